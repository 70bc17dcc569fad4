/*
 * ranks.h - a data-parallel job's replicas as MPI ranks (`nnd --mpi` under
 * mpirun or srun; API.md "Beyond one machine").
 *
 * Rank 0 is the daemon: it serves HTTP, keeps the store and runs jobs on
 * its workers. A job with R > 1 replicas (R at most the ranks) runs replica
 * i on rank i: rank 0's worker sends the other R - 1 ranks everything the
 * job trains on once (config, model, checkpoint, rows), then every rank
 * runs the same nn_train with a distributed carrier (nn.h's nn_parallel):
 * each rank runs its shards' passes, and an allgather after each phase
 * gives every rank every shard's outputs, which it adds in shard order, so
 * the weights are those of the same job on threads, bit for bit. The other
 * ranks never touch the store; between jobs they wait in a probe-and-sleep
 * loop, not spinning in MPI. One MPI job runs at a time (every one uses
 * rank 0 and rank 1). Built only when Open MPI is found (NND_MPI); without
 * it ranks_init refuses --mpi and ranks_size is 0.
 */
#ifndef NND_RANKS_H
#define NND_RANKS_H

#include <stddef.h>
#include "nn.h"

/* MPI_Init, then every rank's kernels (nn_kernel_ident) checked against
 * rank 0's. Returns this process's rank, or -1 after saying why on stderr
 * (no MPI support built, MPI failed, or a rank runs other kernels: every
 * rank then exits non-zero). */
int ranks_init(int *argc, char ***argv);
/* The ranks under --mpi (after ranks_init), 0 otherwise. */
int ranks_size(void);
/* Ranks > 0: run rank 0's jobs until it says stop, then MPI_Finalize.
 * Returns the process's exit status. */
int ranks_serve(void);
/* Rank 0 at exit: tells the other ranks to stop, MPI_Finalize. Safe to
 * call when ranks_init was not. */
void ranks_finish(void);
/* 1 when a job of cfg runs on ranks (its replicas > 1 and <= the ranks). */
int ranks_fit(const nn_train_config *cfg);
/*
 * Rank 0: nn_train with the same arguments and result, replica i on rank i
 * for i < cfg->replicas. Callbacks run on rank 0 only; should_stop's and
 * on_checkpoint's answers reach every rank. Serialised: one at a time.
 */
nn_status ranks_train(nn_model *m, const nn_data *train, const nn_data *val,
                      const nn_train_config *cfg, const nn_callbacks *cb, const void *resume,
                      size_t resume_len, nn_train_result *res, char *err, size_t errlen);

#endif
