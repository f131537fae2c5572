/* dv2-distill — distillation of a frozen DINOv2 teacher (backbone + DINO and
 * iBOT heads) into a smaller student (spec §16): the DINO, iBOT (every patch
 * token of both global crops, no masking) and KoLeo losses against the
 * teacher's targets, no stochastic depth, a spare EMA of the student as the
 * final model.  The engine is dv2-train's (lib/train/train.h) in its
 * distillation mode, with the same command line (lib/cli/cli_train.c). */
#include "cli/cli_train.h"

int main(int argc, char **argv) { return dv2_cli_train_main(argc, argv, 1); }
