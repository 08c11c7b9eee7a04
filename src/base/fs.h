/*
 * fs — small file-system helpers shared by the modules that keep state on disk.
 *
 * Job: create private directories.
 * Ownership: borrows its arguments.
 * Threading: thread-safe (blocking system calls: not for an event loop's thread).
 * Errors: ERR_INVAL (empty or over-long path), ERR_IO (with the OS reason in the detail).
 */
#ifndef OUTRIGGER_BASE_FS_H
#define OUTRIGGER_BASE_FS_H

#include "base/err.h"

/* Longest path fs_mkdir_p accepts, NUL included. */
#define FS_PATH_MAX 4096

/** Creates @p path and its missing parents with @p mode (like `mkdir -p`); existing ones are
 * left as they are. */
int fs_mkdir_p(const char *path, unsigned mode, err_detail_t *d)
    __attribute__((warn_unused_result));

#endif
