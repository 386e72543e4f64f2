#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""The table of a sitting: for each benchmark row, Linux's and Damselfly's medians with
their range over the pairs, each pair's ratio, and the ratio of the medians (Linux's time
over Damselfly's: above 1, Damselfly is faster).

  ratios.py OUTDIR      (OUTDIR holds linux-N.log and damselfly-N.log, as run.sh writes)
"""
import glob, os, re, statistics, sys

# (row, the peer's RESULT name, Damselfly's RESULT name)
ROWS = [('getpid by trap', 'syscall_getpid', 'syscall_getpid'),
        ('clock_gettime by trap', 'clock_gettime_syscall', 'clock_gettime_syscall'),
        ('clock_gettime (vDSO / clock page)', 'clock_gettime_vdso', 'clock_gettime_vdso')]
ROWS += [('ring NOP %s b%d' % (m, b), 'uring_nop_%s_b%d' % (m, b), 'uring_nop_%s_b%d' % (m, b))
         for m in ('plain', 'sqpoll') for b in (1, 8, 32, 128)]
ROWS += [('pipe RTT same CPU', 'pipe_rtt_samecpu', 'pipe_rtt_samecpu'),
         ('pipe RTT across CPUs', 'pipe_rtt_crosscpu', 'pipe_rtt_crosscpu'),
         ('port RTT same CPU (vs Linux pipe)', 'pipe_rtt_samecpu', 'port_rtt_samecpu'),
         ('port RTT across CPUs (vs Linux pipe)', 'pipe_rtt_crosscpu', 'port_rtt_crosscpu'),
         ('posix_spawn + wait', 'posix_spawn_wait', 'posix_spawn_wait'),
         ('tmpfs 4 KiB write', 'file_write_64M_4k', 'file_write_64M_4k'),
         ('tmpfs 4 KiB read', 'file_read_64M_4k', 'file_read_64M_4k'),
         ('create', 'smallfile_create', 'smallfile_create'),
         ('open+close', 'smallfile_open_close', 'smallfile_open_close'),
         ('stat', 'smallfile_stat', 'smallfile_stat'),
         ('unlink', 'smallfile_unlink', 'smallfile_unlink')]
# The peer reports these per 64 MiB; Damselfly per 4 KiB call.
PER_CALL = {'file_write_64M_4k': 16384, 'file_read_64M_4k': 16384}


def parse(path):
    out = {}
    if os.path.exists(path):
        for line in open(path, errors='replace'):
            m = re.search(r'RESULT (\S+) ns_per_op=([0-9.]+)', line)
            if m:
                out[m.group(1)] = float(m.group(2))
    return out


def fmt(ns):
    if ns < 10_000:
        return '%.0f ns' % ns
    return '%.1f µs' % (ns / 1e3) if ns < 1e6 else '%.2f ms' % (ns / 1e6)


def main():
    out = sys.argv[1]
    pairs = sorted(int(re.search(r'damselfly-(\d+)\.log$', p).group(1))
                   for p in glob.glob(os.path.join(out, 'damselfly-*.log')))
    linux = {i: parse(os.path.join(out, 'linux-%d.log' % i)) for i in pairs}
    ours = {i: parse(os.path.join(out, 'damselfly-%d.log' % i)) for i in pairs}
    print('%d pairs' % len(pairs))
    print('| row | Linux 6.1: median [min..max] | Damselfly: median [min..max] '
          '| ratio per pair: min..max | ratio of medians |')
    print('|---|---|---|---|---|')
    for name, peer, mine in ROWS:
        ls, ds, rs = [], [], []
        for i in pairs:
            lv, dv = linux[i].get(peer), ours[i].get(mine)
            if lv is not None:
                lv /= PER_CALL.get(peer, 1)
                ls.append(lv)
            if dv is not None:
                ds.append(dv)
            if lv is not None and dv is not None:
                rs.append(lv / dv)
        if not ls or not ds:
            print('| %s | %s | %s | missing | |' % (name, len(ls), len(ds)))
            continue
        print('| %s | %s [%s..%s] | %s [%s..%s] | %.2f..%.2f | **%.2f** |' % (
            name, fmt(statistics.median(ls)), fmt(min(ls)), fmt(max(ls)),
            fmt(statistics.median(ds)), fmt(min(ds)), fmt(max(ds)),
            min(rs) if rs else float('nan'), max(rs) if rs else float('nan'),
            statistics.median(ls) / statistics.median(ds)))


if __name__ == '__main__':
    main()
