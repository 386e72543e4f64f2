/* SPDX-License-Identifier: MIT OR Apache-2.0
 * Caller profiler: for each watched guest address (function entries, one hex
 * address per line in $DIR/watch), counts the block that ran just before on the
 * same vCPU: the caller's block (the call site, or a tail-calling jump).
 * Output lines: "<watched hex> <caller block hex> <count>". Every block gets a
 * callback, so the guest runs several times slower while it is loaded. */
#include <stdlib.h>
#include "plugin_api.h"
#include "control.h"

PLUGIN_EXPORT int qemu_plugin_version = 1;

#define MAX_WATCH 4096
#define CAP (1u << 18) /* distinct (watched, caller) pairs */
#define MAX_VCPUS 64
static uint64_t watch[MAX_WATCH];
static int n_watch;
struct edge {
    uint64_t to, from, count;
};
static struct edge *edges;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t last_block[MAX_VCPUS];

static int is_watched(uint64_t v) {
    int lo = 0, hi = n_watch - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (watch[mid] == v)
            return 1;
        if (watch[mid] < v)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return 0;
}

static void on_block(unsigned int vcpu, void *vaddr) {
    last_block[vcpu % MAX_VCPUS] = (uint64_t)vaddr;
}

static void on_watched(unsigned int vcpu, void *vaddr) {
    uint64_t to = (uint64_t)vaddr, from = last_block[vcpu % MAX_VCPUS];
    last_block[vcpu % MAX_VCPUS] = to;
    uint64_t h = ((to ^ (from * 31)) * 0x9e3779b97f4a7c15ull) >> 46;
    pthread_mutex_lock(&lock);
    for (;; h++) {
        struct edge *e = &edges[h & (CAP - 1)];
        if (e->to == to && e->from == from) {
            e->count++;
            break;
        }
        if (e->to == 0) {
            e->to = to;
            e->from = from;
            e->count = 1;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    uint64_t v = qemu_plugin_tb_vaddr(tb);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, is_watched(v) ? on_watched : on_block,
                                         PLUGIN_CB_NO_REGS, (void *)v);
}

static void on_command(const char *cmd, FILE *out) {
    (void)cmd;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < CAP; i++) {
        if (!out)
            edges[i] = (struct edge){0, 0, 0};
        else if (edges[i].count)
            fprintf(out, "%llx %llx %llu\n", (unsigned long long)edges[i].to,
                    (unsigned long long)edges[i].from, (unsigned long long)edges[i].count);
    }
    pthread_mutex_unlock(&lock);
}

static int compare(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const void *info, int argc,
                                      char **argv) {
    (void)info;
    control_parse_args(argc, argv);
    edges = calloc(CAP, sizeof *edges);
    if (!edges)
        return -1;
    char path[300];
    snprintf(path, sizeof path, "%s/watch", control_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        unsigned long long v;
        while (n_watch < MAX_WATCH && fscanf(f, "%llx", &v) == 1)
            watch[n_watch++] = v;
        fclose(f);
    }
    qsort(watch, n_watch, sizeof watch[0], compare);
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    control_start(on_command);
    return 0;
}
