/* SPDX-License-Identifier: MIT OR Apache-2.0
 * Shared by both profilers: a control thread that polls a command file, so counts
 * can be reset and dumped around one benchmark run while the guest keeps going.
 *   echo reset > $DIR/cmd   zero the counts
 *   echo dump  > $DIR/cmd   write them to $DIR/out (atomically, via $DIR/out.tmp)
 * DIR is the plugin argument dir=... (default /tmp/tcg-profile). */
#ifndef DAMSELFLY_TCG_CONTROL_H
#define DAMSELFLY_TCG_CONTROL_H
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char control_dir[256] = "/tmp/tcg-profile";

static void control_parse_args(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], "dir=", 4))
            snprintf(control_dir, sizeof control_dir, "%s", argv[i] + 4);
}

/* Called with "reset" or "dump" and the output file (NULL for reset). */
typedef void (*control_fn)(const char *cmd, FILE *out);

static void *control_loop(void *arg) {
    control_fn fn = (control_fn)arg;
    char cmd_path[300], out_path[300], tmp_path[300];
    snprintf(cmd_path, sizeof cmd_path, "%s/cmd", control_dir);
    snprintf(out_path, sizeof out_path, "%s/out", control_dir);
    snprintf(tmp_path, sizeof tmp_path, "%s/out.tmp", control_dir);
    for (;;) {
        usleep(50000);
        FILE *f = fopen(cmd_path, "r");
        if (!f)
            continue;
        char cmd[32] = {0};
        if (!fgets(cmd, sizeof cmd, f))
            cmd[0] = 0;
        fclose(f);
        unlink(cmd_path);
        if (!strncmp(cmd, "reset", 5)) {
            fn("reset", NULL);
        } else if (!strncmp(cmd, "dump", 4)) {
            FILE *o = fopen(tmp_path, "w");
            if (!o)
                continue;
            fn("dump", o);
            fclose(o);
            rename(tmp_path, out_path);
        }
    }
    return NULL;
}

static void control_start(control_fn fn) {
    pthread_t t;
    pthread_create(&t, NULL, control_loop, (void *)fn);
    pthread_detach(t);
}
#endif
