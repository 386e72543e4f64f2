/* SPDX-License-Identifier: MIT OR Apache-2.0
 * The few entry points of QEMU's TCG plugin interface (version 1, QEMU 7.2, as
 * Debian 12 ships it) that the profilers here use, declared by hand: Debian has no
 * package with QEMU's plugin header. The plugin runs inside qemu-system-x86_64,
 * which exports these symbols. */
#ifndef DAMSELFLY_TCG_PLUGIN_API_H
#define DAMSELFLY_TCG_PLUGIN_API_H
#include <stddef.h>
#include <stdint.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;

/* QEMU_PLUGIN_INLINE_ADD_U64 and QEMU_PLUGIN_CB_NO_REGS */
#define PLUGIN_INLINE_ADD_U64 0
#define PLUGIN_CB_NO_REGS 0

typedef void (*plugin_tb_trans_cb)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*plugin_vcpu_udata_cb)(unsigned int vcpu_index, void *userdata);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, plugin_tb_trans_cb cb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
extern void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, int op,
                                                     void *ptr, uint64_t imm);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb,
                                                 plugin_vcpu_udata_cb cb, int flags,
                                                 void *userdata);

/* The plugin's own exports. */
#define PLUGIN_EXPORT __attribute__((visibility("default")))
#endif
