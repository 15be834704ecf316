/*
 * krunner bundle launcher (static, no libc needed in the image).
 *
 * Runs the bundle's CPython through the bundle's own dynamic loader, so nothing
 * is taken from the image (no /lib64/ld-linux-x86-64.so.2, no libc, no
 * LD_LIBRARY_PATH that children would inherit):
 *
 *   <prefix>/lib/ld-linux-x86-64.so.2 --library-path <prefix>/lib
 *       --argv0 <prefix>/bin/python <prefix>/bin/python3.11-real [EXTRA...] ARGS...
 *
 * Built twice:
 *   bin/python       - prefix = two levels above the launcher (/proc/self/exe),
 *                      falling back to KRUNNER_PREFIX when /proc is unavailable;
 *   kernel/entrypoint - -DFIXED_PREFIX -DEXTRA_ARGS: always KRUNNER_PREFIX and
 *                      runs `python -s -m krunner.entrypoint ARGS...`.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef KRUNNER_PREFIX
#define KRUNNER_PREFIX "/opt/backend.ai"
#endif
#ifndef PYTHON_REAL
#define PYTHON_REAL "python3.11-real"
#endif
#ifndef LOADER_NAME
#define LOADER_NAME "ld-linux-x86-64.so.2"
#endif

static const char *const extra_args[] = {
#ifdef EXTRA_ARGS
    EXTRA_ARGS,
#endif
    NULL};

static char prefix[PATH_MAX];

#ifndef FIXED_PREFIX
static int is_file(const char *path) { return access(path, X_OK) == 0; }
#endif

static void find_prefix(void) {
    strcpy(prefix, KRUNNER_PREFIX);
#ifndef FIXED_PREFIX
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return;
    self[n] = '\0';
    for (int level = 0; level < 2; level++) { /* strip "/python", then "/bin" */
        char *slash = strrchr(self, '/');
        if (slash == NULL) return;
        *slash = '\0';
    }
    if (self[0] == '\0') return;
    char loader[PATH_MAX];
    if (snprintf(loader, sizeof loader, "%s/lib/%s", self, LOADER_NAME) >= (int)sizeof loader) return;
    if (is_file(loader)) strcpy(prefix, self);
#endif
}

static char *join(const char *a, const char *b) {
    size_t len = strlen(a) + strlen(b) + 1;
    char *s = malloc(len);
    if (s == NULL) {
        perror("krunner-launcher: malloc");
        _exit(127);
    }
    strcpy(s, a);
    strcat(s, b);
    return s;
}

int main(int argc, char **argv) {
    find_prefix();
    char *loader = join(prefix, "/lib/" LOADER_NAME);
    char *libdir = join(prefix, "/lib");
    char *python = join(prefix, "/bin/python");
    char *real = join(prefix, "/bin/" PYTHON_REAL);
    size_t n_extra = sizeof extra_args / sizeof extra_args[0] - 1;
    char **args = calloc((size_t)argc + n_extra + 8, sizeof(char *));
    if (args == NULL) {
        perror("krunner-launcher: calloc");
        return 127;
    }
    size_t i = 0;
    /* argv[0] of the loader only shows up in /proc/<pid>/cmdline */
    args[i++] = (argc > 0 && argv[0] != NULL) ? argv[0] : python;
    args[i++] = "--library-path";
    args[i++] = libdir;
    args[i++] = "--argv0";
    args[i++] = python;
    args[i++] = real;
    for (size_t k = 0; k < n_extra; k++) args[i++] = (char *)extra_args[k];
    for (int k = 1; k < argc; k++) args[i++] = argv[k];
    args[i] = NULL;
    execv(loader, args);
    fprintf(stderr, "krunner-launcher: cannot execute %s: %s\n", loader, strerror(errno));
    return 127;
}
