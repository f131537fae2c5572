/* cli_train.h — the whole command line of the programs on the training
 * engine (lib/train/train.h): options, config resolution, run-directory
 * checks, backend, processes, the run and its summary.  dv2-train and
 * dv2-distill are this one function in their two modes. */
#ifndef DV2_CLI_TRAIN_H
#define DV2_CLI_TRAIN_H

/* Runs dv2-train (distill = 0) or dv2-distill (distill = 1) on argv and
 * returns the program's exit status. */
int dv2_cli_train_main(int argc, char **argv, int distill);

#endif
