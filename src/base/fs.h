/*
 * fs — small file-system helpers shared by the modules that keep state on disk.
 *
 * Job: create private directories; read a whole file under a size limit.
 * Ownership: borrows its arguments; fs_read_file appends to the caller's buf_t.
 * Threading: thread-safe (blocking system calls: not for an event loop's thread).
 * Errors: ERR_INVAL (empty or over-long path), ERR_IO (with the OS reason in the detail),
 * ERR_TOO_LARGE (a file past the buffer's max), ERR_NOMEM.
 */
#ifndef OUTRIGGER_BASE_FS_H
#define OUTRIGGER_BASE_FS_H

#include "base/buf.h"
#include "base/err.h"

/* Longest path fs_mkdir_p accepts, NUL included. */
#define FS_PATH_MAX 4096

/** Creates @p path and its missing parents with @p mode (like `mkdir -p`); existing ones are
 * left as they are. */
int fs_mkdir_p(const char *path, unsigned mode, err_detail_t *d)
    __attribute__((warn_unused_result));

/** Appends the whole file at @p path to @p b; the file may hold at most b->max bytes (on
 * ERR_TOO_LARGE the buffer is left empty, see buf.h). @p name is how the detail names the file
 * ("<name>: cannot open: <OS reason>", "<name>: file is larger than <max> bytes"); NULL means
 * @p path. The stack chunk the bytes pass through is wiped, so a secrets file leaves a copy only
 * in @p b, which the caller wipes. */
int fs_read_file(const char *path, const char *name, buf_t *b, err_detail_t *d)
    __attribute__((warn_unused_result));

#endif
