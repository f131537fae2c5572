/* dv2-train — DINOv2 self-supervised training (DINO + iBOT + KoLeo, EMA
 * teacher) from a config and a dataset into a run directory; resumable,
 * data-parallel under mpirun/srun.  The engine is lib/train/; its command
 * line, shared with dv2-distill, is lib/cli/cli_train.c. */
#include "cli/cli_train.h"

int main(int argc, char **argv) { return dv2_cli_train_main(argc, argv, 0); }
