/*
 * su-exec for the krunner bundle (static): switch user and group ids, then exec.
 *
 *   su-exec USER[:GROUP[,GID...]] COMMAND [ARGS...]
 *
 * USER/GROUP are numeric ids or names looked up in /etc/passwd and /etc/group
 * (parsed directly: the image may have no libc and no NSS).  Extra comma-
 * separated groups become the supplementary groups (as the agent passes
 * "uid:gid,gid2,...,42"); without them the user's groups from /etc/group are
 * used.  HOME is set from /etc/passwd when the user has an entry there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_GROUPS 256

static void die(const char *msg, const char *arg) {
    fprintf(stderr, "su-exec: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    exit(1);
}

static int parse_id(const char *s, long *out) {
    char *end;
    if (*s == '\0') return 0;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end != '\0' || v < 0 || v > 0xfffffffeL) return 0;
    *out = v;
    return 1;
}

/* Find a line of an /etc database whose field `key_field` equals `key`; copy fields. */
static int lookup(const char *path, int key_field, const char *key, char fields[][256], int nfields) {
    FILE *f = fopen(path, "r");
    if (f == NULL) return 0;
    char line[4096];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *p = line;
        for (int i = 0; i < nfields; i++) {
            char *colon = strchr(p, ':');
            size_t len = colon ? (size_t)(colon - p) : strlen(p);
            if (len > 255) len = 255;
            memcpy(fields[i], p, len);
            fields[i][len] = '\0';
            p = colon ? colon + 1 : p + len;
        }
        found = strcmp(fields[key_field], key) == 0;
    }
    fclose(f);
    return found;
}

/* Supplementary groups of `user` from /etc/group (member lists). */
static int member_groups(const char *user, gid_t *gids, int n, int max) {
    FILE *f = fopen("/etc/group", "r");
    if (f == NULL) return n;
    char line[8192];
    while (n < max && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *save = NULL, *name = strtok_r(line, ":", &save);
        (void)name;
        strtok_r(NULL, ":", &save); /* password */
        char *gid = strtok_r(NULL, ":", &save);
        char *members = strtok_r(NULL, ":", &save);
        long g;
        if (gid == NULL || members == NULL || !parse_id(gid, &g)) continue;
        char *msave = NULL;
        for (char *m = strtok_r(members, ",", &msave); m; m = strtok_r(NULL, ",", &msave))
            if (strcmp(m, user) == 0) gids[n++] = (gid_t)g;
    }
    fclose(f);
    return n;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: su-exec USER[:GROUP[,GID...]] COMMAND [ARGS...]\n");
        return 1;
    }
    char spec[1024];
    if (strlen(argv[1]) >= sizeof spec) die("user spec too long", NULL);
    strcpy(spec, argv[1]);
    char *group = strchr(spec, ':');
    if (group) *group++ = '\0';
    char *extra = group ? strchr(group, ',') : NULL;
    if (extra) *extra++ = '\0';

    char pw[7][256];
    long uid = -1, gid = -1;
    int have_pw = 0;
    if (*spec == '\0') {
        uid = getuid();
    } else if (parse_id(spec, &uid)) {
        have_pw = lookup("/etc/passwd", 2, spec, pw, 7);
    } else {
        have_pw = lookup("/etc/passwd", 0, spec, pw, 7);
        if (!have_pw || !parse_id(pw[2], &uid)) die("unknown user", spec);
    }
    if (group && *group) {
        if (!parse_id(group, &gid)) {
            char gr[4][256];
            if (!lookup("/etc/group", 0, group, gr, 4) || !parse_id(gr[2], &gid)) die("unknown group", group);
        }
    } else if (have_pw && parse_id(pw[3], &gid)) {
        /* the user's primary group */
    } else {
        gid = uid;
    }

    gid_t gids[MAX_GROUPS];
    int ngids = 0;
    gids[ngids++] = (gid_t)gid;
    if (extra) {
        char *save = NULL;
        for (char *g = strtok_r(extra, ",", &save); g && ngids < MAX_GROUPS; g = strtok_r(NULL, ",", &save)) {
            long v;
            if (!parse_id(g, &v)) die("bad supplementary gid", g);
            gids[ngids++] = (gid_t)v;
        }
    } else if (have_pw) {
        ngids = member_groups(pw[0], gids, ngids, MAX_GROUPS);
    }
    if (have_pw && pw[5][0]) setenv("HOME", pw[5], 1);

    if (setgroups((size_t)ngids, gids) < 0) die("setgroups", strerror(errno));
    if (setgid((gid_t)gid) < 0) die("setgid", strerror(errno));
    if (setuid((uid_t)uid) < 0) die("setuid", strerror(errno));
    execvp(argv[2], argv + 2);
    fprintf(stderr, "su-exec: %s: %s\n", argv[2], strerror(errno));
    return 127;
}
