/* SPDX-License-Identifier: MIT OR Apache-2.0
 * Block profiler: how many times each translated guest block ran, with its
 * instruction count. Exact and deterministic (no sampling): instructions per
 * operation of a benchmark, by function once symbolized (profile.py blocks).
 * Output lines: "<vaddr hex> <instructions> <executions>". */
#include <stdlib.h>
#include "plugin_api.h"
#include "control.h"

PLUGIN_EXPORT int qemu_plugin_version = 1;

#define CAP (1u << 20) /* distinct (address, length) blocks */
struct block {
    uint64_t vaddr, insns, count;
};
static struct block *table;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static struct block *slot(uint64_t vaddr, uint64_t insns) {
    uint64_t h = (vaddr * 0x9e3779b97f4a7c15ull) >> 44;
    for (;; h++) {
        struct block *b = &table[h & (CAP - 1)];
        if (b->vaddr == vaddr && b->insns == insns)
            return b;
        if (b->vaddr == 0 && b->insns == 0) {
            b->vaddr = vaddr;
            b->insns = insns;
            return b;
        }
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    (void)id;
    pthread_mutex_lock(&lock);
    struct block *b = slot(qemu_plugin_tb_vaddr(tb), qemu_plugin_tb_n_insns(tb));
    pthread_mutex_unlock(&lock);
    /* Counted in the generated code: racy between vCPUs, but a lost increment
     * among millions does not change a profile. */
    qemu_plugin_register_vcpu_tb_exec_inline(tb, PLUGIN_INLINE_ADD_U64, &b->count, 1);
}

/* "reset" (out is NULL) zeroes the counts; "dump" writes the blocks that ran. */
static void on_command(const char *cmd, FILE *out) {
    (void)cmd;
    for (size_t i = 0; i < CAP; i++) {
        if (!out)
            table[i].count = 0;
        else if (table[i].count)
            fprintf(out, "%llx %llu %llu\n", (unsigned long long)table[i].vaddr,
                    (unsigned long long)table[i].insns, (unsigned long long)table[i].count);
    }
}

PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const void *info, int argc,
                                      char **argv) {
    (void)info;
    control_parse_args(argc, argv);
    table = calloc(CAP, sizeof *table);
    if (!table)
        return -1;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    control_start(on_command);
    return 0;
}
