#!/usr/bin/env python3
"""Helper for run.sh: boots one VM and timestamps its serial output, parses
benchmark output of host runs, and aggregates everything into results.json
and results.md.

  harness.py vm     --accel kvm|tcg --mode boot|full --kernel K --initrd I
                    --log LOG --out JSON [--timeout S] [--append EXTRA]
  harness.py host   --log LOG --out JSON      (parse a host benchmark log)
  harness.py report --runs DIR --meta META.json --json OUT.json --md OUT.md
"""
import argparse
import glob
import json
import os
import re
import select
import shlex
import signal
import statistics
import subprocess
import sys
import time

RESULT_RE = re.compile(r"^RESULT (\S+) (.*)$")


def parse_lines(lines):
    """lines: iterable of (t_host_s or None, text). Returns dict."""
    res = {"results": {}, "fails": [], "info": {}, "notes": [], "exits": {},
           "markers": {}}
    for t, line in lines:
        line = line.rstrip("\r\n")
        # the guest's serial output may carry stray '\r' or kernel lines
        line = line.replace("\r", "")
        m = RESULT_RE.match(line)
        if m:
            kv = dict(x.split("=", 1) for x in m.group(2).split() if "=" in x)
            res["results"][m.group(1)] = {k: float(v) for k, v in kv.items()}
            continue
        if line.startswith("FAIL "):
            parts = line.split(" ", 2)
            res["fails"].append({"name": parts[1], "why": parts[2] if len(parts) > 2 else ""})
            continue
        if line.startswith("NOTE "):
            res["notes"].append(line[5:])
            continue
        if line.startswith("@@INFO "):
            parts = line[7:].split(" ", 1)
            res["info"][parts[0]] = parts[1].strip() if len(parts) > 1 else ""
            continue
        if line.startswith("@@EXIT "):
            p = line.split()
            if len(p) >= 3:
                res["exits"][p[1]] = int(p[2])
            continue
        if line.startswith("@@UPTIME "):
            try:
                res["guest_uptime_at_init_s"] = float(line.split()[1])
            except ValueError:
                pass
        if line.startswith("@@") and t is not None:
            key = line.split()[0][2:]
            res["markers"].setdefault(key, t)
    return res


def host_load():
    """Load on the host right now: 1-min loadavg and the qemu-system
    processes that are not children of this harness (other users)."""
    try:
        la = float(open("/proc/loadavg").read().split()[0])
    except OSError:
        la = None
    n = 0
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            comm = open("/proc/%s/comm" % d).read().strip()
            if not comm.startswith("qemu-system"):
                continue
            ppid = int(open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid != me:
            n += 1
    return {"loadavg1": la, "foreign_qemu": n}


def cpu_busy(window=2.0):
    """Percent of host CPU time not idle over `window` seconds."""
    def snap():
        v = list(map(int, open("/proc/stat").readline().split()[1:]))
        return sum(v), v[3] + v[4]
    a = snap()
    time.sleep(window)
    b = snap()
    tot = b[0] - a[0]
    return 100.0 * (1 - (b[1] - a[1]) / tot) if tot else 0.0


def wait_quiet(max_wait, threshold):
    """Wait (up to max_wait s) until the host is mostly idle, so that other
    users of this 2-CPU machine disturb the measurement as little as we can
    arrange. Returns (busy_percent_last_seen, seconds_waited)."""
    t0 = time.monotonic()
    busy = cpu_busy()
    while busy > threshold and time.monotonic() - t0 < max_wait:
        time.sleep(3)
        busy = cpu_busy()
    return busy, time.monotonic() - t0


def cmd_quiet(a):
    busy, waited = wait_quiet(a.max_wait, a.threshold)
    print("@@INFO host_busy_pct_before %.1f" % busy)
    print("@@INFO host_quiet_wait_s %.0f" % waited)
    print("@@INFO host_load_before %s" % json.dumps(host_load()))
    return 0


def cmd_vm(a):
    append = "%s bench=%s" % (a.base_append, a.mode)
    if a.append:
        append += " " + a.append
    cmd = ["qemu-system-x86_64"] + shlex.split(a.qemu_pre) + ["-accel", a.accel] + (["-cpu", a.cpu] if a.cpu else []) + ["-smp", str(a.smp),
           "-m", a.mem, "-nodefaults", "-display", "none", "-serial", "stdio",
           "-no-reboot", "-kernel", a.kernel, "-initrd", a.initrd,
           "-append", append] + shlex.split(a.qemu_post)
    log = open(a.log, "w")
    log.write("# " + " ".join(shlex.quote(c) for c in cmd) + "\n")
    lines = []
    first_output = None
    timed_out = False
    busy, waited = wait_quiet(a.quiet_max_wait, a.quiet_threshold)
    load_start = host_load()
    load_start["busy_pct"] = round(busy, 1)
    load_start["quiet_wait_s"] = round(waited)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, start_new_session=True)
    fd = p.stdout.fileno()
    buf = b""
    deadline = t0 + a.timeout
    # init must print its first line within init_timeout, or we give up early
    init_deadline = t0 + (a.init_timeout or a.timeout)
    seen_init = False
    kvm_error = None
    while True:
        now = time.monotonic()
        limit = deadline if seen_init else min(deadline, init_deadline)
        if now >= limit:
            timed_out = True
            break
        r, _, _ = select.select([fd], [], [], min(1.0, limit - now))
        if not r:
            continue
        chunk = os.read(fd, 65536)
        t = time.monotonic() - t0
        if not chunk:
            break
        if first_output is None:
            first_output = t
        buf += chunk
        while b"\n" in buf:
            raw, buf = buf.split(b"\n", 1)
            text = raw.decode("utf-8", "replace").replace("\r", "")
            lines.append((t, text))
            log.write("%10.6f %s\n" % (t, text))
            if "@@INIT-START" in text:
                seen_init = True
            if "KVM internal error" in text or "emulation failure" in text:
                # QEMU stops the guest and keeps running: collect the register
                # dump for a moment, then give up on this run.
                deadline = min(deadline, time.monotonic() + 3)
                init_deadline = min(init_deadline, time.monotonic() + 3)
                kvm_error = text
    if timed_out:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    rc = p.wait()
    t_exit = time.monotonic() - t0
    if buf:
        text = buf.decode("utf-8", "replace").replace("\r", "")
        lines.append((t_exit, text))
        log.write("%10.6f %s\n" % (t_exit, text))
    log.write("# exit rc=%s t=%.6f timed_out=%s\n" % (rc, t_exit, timed_out))
    log.close()
    res = parse_lines(lines)
    res.update({
        "kind": "vm", "accel": a.accel, "mode": a.mode, "cmdline": cmd,
        "flavor": a.flavor, "kernel_pkg": a.kernel_pkg,
        "qemu_rc": rc, "timed_out": timed_out, "t_exit_s": t_exit,
        "t_first_output_s": first_output, "log": a.log,
        "host_load_start": load_start, "host_load_end": host_load(),
    })
    mk = res["markers"]
    res["boot_to_init_s"] = mk.get("INIT-START")
    res["boot_to_poweroff_s"] = t_exit if (not timed_out and "POWEROFF" in mk) else None
    ok = (not timed_out) and "POWEROFF" in mk
    res["ok"] = ok
    if not ok:
        tail = [l for _, l in lines[-8:]]
        if kvm_error:
            last_kernel = [l for _, l in lines if l.startswith("[")]
            res["error"] = ("KVM internal error (emulation failure) after %.0f s%s" % (
                t_exit, "; last kernel line: " + last_kernel[-1] if last_kernel else ""))
        elif timed_out:
            res["error"] = "no %s within %.0f s" % (
                "poweroff" if seen_init else "line from init", t_exit)
        else:
            res["error"] = "qemu exited rc=%s before the guest powered off" % rc
        res["error_tail"] = tail
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print("%s %s: %s init=%s exit=%.3fs results=%d fails=%d" % (
        a.accel, a.mode, "ok" if ok else "FAILED (%s)" % res.get("error"),
        "%.3fs" % res["boot_to_init_s"] if res["boot_to_init_s"] else "-",
        t_exit, len(res["results"]), len(res["fails"])))
    return 0 if ok else 1


def cmd_host(a):
    with open(a.log) as f:
        res = parse_lines((None, l) for l in f)
    res.update({"kind": "host", "log": a.log, "ok": True})
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print("host: results=%d fails=%d" % (len(res["results"]), len(res["fails"])))
    return 0


# ---------------------------------------------------------------- report ----

# (section, key, label, how): how = "lat_ns" | "lat_us" | "ops" | "mbps"
ROWS = [
    ("1 boot", "boot_to_init", "QEMU start -> first line from init", "boot_ms"),
    ("1 boot", "boot_to_poweroff", "QEMU start -> QEMU exit after poweroff (boot-only guest)", "boot_ms"),
    ("1 boot", "guest_uptime_at_init", "guest /proc/uptime when init starts", "boot_ms"),
    ("2 syscall", "syscall_getpid", "syscall(SYS_getpid)", "lat_ns"),
    ("3 io_uring", "uring_nop_plain_b1", "NOP, batch 1 (submit+wait)", "ops"),
    ("3 io_uring", "uring_nop_plain_b8", "NOP, batch 8", "ops"),
    ("3 io_uring", "uring_nop_plain_b32", "NOP, batch 32", "ops"),
    ("3 io_uring", "uring_nop_plain_b128", "NOP, batch 128", "ops"),
    ("3 io_uring", "uring_nop_sqpoll_b1", "NOP, SQPOLL, batch 1", "ops"),
    ("3 io_uring", "uring_nop_sqpoll_b8", "NOP, SQPOLL, batch 8", "ops"),
    ("3 io_uring", "uring_nop_sqpoll_b32", "NOP, SQPOLL, batch 32", "ops"),
    ("3 io_uring", "uring_nop_sqpoll_b128", "NOP, SQPOLL, batch 128", "ops"),
    ("4 IPC", "pipe_rtt_samecpu", "pipe ping-pong, 2 procs, same CPU (round trip)", "lat_us"),
    ("4 IPC", "pipe_rtt_crosscpu", "pipe ping-pong, 2 procs, CPU0<->CPU1", "lat_us"),
    ("4 IPC", "eventfd_rtt_samecpu", "eventfd ping-pong, 2 threads, same CPU", "lat_us"),
    ("4 IPC", "eventfd_rtt_crosscpu", "eventfd ping-pong, 2 threads, CPU0<->CPU1", "lat_us"),
    ("4 IPC", "futex_rtt_samecpu", "futex ping-pong, 2 threads, same CPU", "lat_us"),
    ("4 IPC", "futex_rtt_crosscpu", "futex ping-pong, 2 threads, CPU0<->CPU1", "lat_us"),
    ("5 spawn", "fork_exec_wait", "fork+execve(tiny static)+waitpid", "lat_us"),
    ("5 spawn", "posix_spawn_wait", "posix_spawn(tiny)+waitpid (vfork-style)", "lat_us"),
    ("5 spawn", "fork_exit_wait", "fork+_exit+waitpid (no exec)", "lat_us"),
    ("5 spawn", "thread_create_join", "pthread_create+pthread_join", "lat_us"),
    ("6 tmpfs", "file_write_64M_4k", "write 64 MiB in 4 KiB write()s", "mbps"),
    ("6 tmpfs", "file_read_64M_4k", "read 64 MiB back in 4 KiB read()s", "mbps"),
    ("6 tmpfs", "smallfile_create", "create small file (open O_CREAT+write 100 B+close)", "ops"),
    ("6 tmpfs", "smallfile_open_close", "open+close existing small file", "ops"),
    ("6 tmpfs", "smallfile_stat", "stat small file", "ops"),
    ("6 tmpfs", "smallfile_unlink", "unlink small file", "ops"),
    ("7 TCP lo", "tcp_rtt_1byte", "TCP 127.0.0.1 1-byte round trip", "lat_us"),
    ("7 TCP lo", "tcp_bulk_128k", "TCP 127.0.0.1 bulk, 128 KiB writes", "mbps"),
    ("8 timer", "nanosleep_1ms_overshoot", "nanosleep(1 ms) overshoot, median", "lat_us"),
    ("8 timer", "nanosleep_1ms_overshoot_p99", "nanosleep(1 ms) overshoot, p99", "lat_us"),
    ("8 timer", "clock_gettime_vdso", "clock_gettime(MONOTONIC) via vDSO", "lat_ns"),
    ("8 timer", "clock_gettime_syscall", "clock_gettime(MONOTONIC) via syscall", "lat_ns"),
]


# The disk mode's rows (run.sh DISK=1, bench/b_disk.c).
DISK_ROWS = [
    ("9 disk", "disk_randread_4k_qd1", "4 KiB random reads, QD1 (pread, O_DIRECT)", "iops"),
    ("9 disk", "disk_randread_4k_qd32", "4 KiB random reads, QD32 (io_uring, O_DIRECT)", "iops"),
    ("9 disk", "disk_seqread_1m", "sequential 1 MiB reads (pread, O_DIRECT)", "mbps"),
    ("9 disk", "disk_seqwrite_1m", "sequential 1 MiB writes (pwrite, O_DIRECT)", "mbps"),
]


def value_of(how, r):
    """Convert one run's result dict into (display_value, ns_per_op)."""
    ns = r["ns_per_op"]
    if how == "lat_ns":
        return ns
    if how == "lat_us":
        return ns / 1e3
    if how in ("ops", "iops"):
        return 1e9 / ns if ns > 0 else float("nan")
    if how == "mbps":
        return r.get("bytes_per_op", 0) / ns * 1e3 if ns > 0 else float("nan")
    raise ValueError(how)


UNIT = {"lat_ns": "ns/op", "lat_us": "us/op", "ops": "ops/s", "iops": "IOPS", "mbps": "MB/s",
        "boot_ms": "ms"}


def fmt(v, how):
    if v is None:
        return "-"
    if how in ("ops", "iops"):
        if v >= 1e6:
            return "%.2fM" % (v / 1e6)
        if v >= 1e3:
            return "%.1fk" % (v / 1e3)
        return "%.0f" % v
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def stats(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"min": min(vals), "median": statistics.median(vals), "max": max(vals),
            "n": len(vals), "values": vals}


def cmd_report(a):
    meta = json.load(open(a.meta))
    allruns = []
    for p in sorted(glob.glob(os.path.join(a.runs, "*.json"))):
        allruns.append(json.load(open(p)))
    primary = meta.get("flavor", "")
    runs = [r for r in allruns if r["kind"] == "host" or r.get("flavor", "") in ("", primary)]
    altruns = [r for r in allruns if r not in runs]
    disk = meta.get("set") == "disk"
    rows = DISK_ROWS if disk else ROWS
    full_mode = "disk" if disk else "full"
    envs = ([] if disk else [("host", None)]) + [(acc, acc) for acc in meta.get("accels", ["kvm", "tcg"])]
    out = {"meta": meta, "environments": {}, "failures": []}
    for name, acc in envs:
        if acc is None:
            rs = [r for r in runs if r["kind"] == "host"]
            full, boot = rs, []
        else:
            rs = [r for r in runs if r["kind"] == "vm" and r["accel"] == acc]
            full = [r for r in rs if r["mode"] == full_mode]
            boot = [r for r in rs if r["mode"] == "boot"]
        env = {"runs_total": len(rs), "runs_ok": sum(1 for r in rs if r.get("ok")),
               "full_runs_ok": sum(1 for r in full if r.get("ok")),
               "boot_runs_ok": sum(1 for r in boot if r.get("ok")),
               "metrics": {}, "info": {}}
        for r in rs:
            if not r.get("ok"):
                out["failures"].append({"env": name, "mode": r.get("mode"),
                                        "log": r.get("log"), "error": r.get("error"),
                                        "tail": r.get("error_tail")})
            for f in r.get("fails", []):
                out["failures"].append({"env": name, "mode": r.get("mode"),
                                        "benchmark": f["name"], "error": f["why"]})
            for k, v in r.get("exits", {}).items():
                if v != 0:
                    out["failures"].append({"env": name, "mode": r.get("mode"),
                                            "benchmark": k, "error": "exit status %d" % v})
            if r.get("ok") and r.get("info"):
                env["info"] = r["info"]
        okfull = [r for r in full if r.get("ok")]
        for sec, key, label, how in rows:
            if how == "boot_ms":
                if acc is None:
                    continue
                src = boot if key == "boot_to_poweroff" else (boot + full)
                if key == "guest_uptime_at_init":
                    vals = [r.get("guest_uptime_at_init_s") for r in src if r.get("ok")]
                else:
                    vals = [r.get(key + "_s") for r in src if r.get("ok")]
                st = stats([v * 1e3 for v in vals if v is not None])
            else:
                vals = [value_of(how, r["results"][key]) for r in okfull
                        if key in r.get("results", {})]
                st = stats(vals)
            if st:
                st["unit"] = UNIT[how]
                env["metrics"][key] = st
        out["environments"][name] = env
    json.dump(out, open(a.json, "w"), indent=1)

    # ------------------------------------------------------------ markdown
    md = []
    if disk:
        md.append("# Linux peer baseline: disk (virtio-blk) in QEMU\n")
    else:
        md.append("# Linux peer baseline: micro-benchmarks in QEMU (KVM and TCG) and on the host\n")
    md.append("Generated by `run.sh` on %s. Raw serial logs: `%s`; all numbers: `%s`.\n" % (
        meta.get("date"), "logs/disk/" if disk else "logs/", os.path.basename(a.json)))
    md.append("## Setup\n")
    md.append("| item | value |\n|---|---|")
    for k, v in meta.get("setup", []):
        md.append("| %s | %s |" % (k, str(v).replace("|", "\\|")))
    for name, acc in envs:
        info = out["environments"][name].get("info") or {}
        if acc and info:
            md.append("| guest (%s) kernel | %s |" % (name, info.get("version", info.get("kernel", "?"))))
            md.append("| guest (%s) CPU / clocksource | %s / %s |" % (name, info.get("cpu_model", "?"), info.get("clocksource", "?")))
            vul = ["%s: %s" % (k[5:], v) for k, v in sorted(info.items())
                   if k.startswith("vuln_") and v != "Not affected"]
            md.append("| guest (%s) mitigations in force | %s |" % (name, "; ".join(vul) or "none reported"))
    md.append("")
    md.append("QEMU command lines (per accel):\n")
    for acc in meta.get("accels", []):
        rs = [r for r in runs if r["kind"] == "vm" and r["accel"] == acc]
        if rs:
            md.append("```\n%s\n```" % " ".join(shlex.quote(c) for c in rs[0]["cmdline"]).replace("bench=boot", "bench=boot|full"))
    md.append("")
    md.append("## Results\n")
    md.append("Each cell is median [min..max] over the runs of the whole VM (or, for host, "
              "whole benchmark runs); each run's own figure is the median of %s timed "
              "samples of %s each inside that run. Latency: lower is better; "
              "ops/s, IOPS and MB/s: higher is better. Runs per environment: %s.\n" % (
                  meta.get("samples"),
                  "a fixed amount of work (see the caveats)" if disk else "about %s ms" % meta.get("target_ms"),
                  ", ".join("%s %d full + %d boot-only" % (n, out["environments"][n]["full_runs_ok"], out["environments"][n]["boot_runs_ok"]) if n != "host" else "host %d" % out["environments"][n]["full_runs_ok"] for n, _ in envs)))
    hdr = "| # | benchmark | unit | " + " | ".join(n for n, _ in envs) + " |"
    md.append(hdr)
    md.append("|---|---|---|" + "---|" * len(envs))
    for sec, key, label, how in rows:
        cells = []
        for name, _ in envs:
            st = out["environments"][name]["metrics"].get(key)
            envd = out["environments"][name]
            if st is None and envd["runs_total"] and not envd["runs_ok"]:
                cells.append("FAILED (see below)" if key == "boot_to_init" else "failed")
            elif st is None:
                cells.append("n/a" if (name == "host" and how == "boot_ms") else "—")
            else:
                cells.append("**%s** [%s..%s]" % (fmt(st["median"], how), fmt(st["min"], how), fmt(st["max"], how)))
        md.append("| %s | %s | %s | %s |" % (sec, label, UNIT[how], " | ".join(cells)))
    md.append("")
    # per-op view for throughput rows
    md.append("The same figures as median ns per op and ops/s (median over runs; "
              "for MB/s rows one op is %s):\n" % (
                  "one 1 MiB read/write" if disk else "one 4 KiB write/read or one 128 KiB TCP write"))
    md.append("| benchmark | " + " | ".join("%s ns/op | %s ops/s" % (n, n) for n, _ in envs) + " |")
    md.append("|---|" + "---|---|" * len(envs))
    for sec, key, label, how in rows:
        if how == "boot_ms":
            continue
        cells = []
        for name, _ in envs:
            st = out["environments"][name]["metrics"].get(key)
            if st is None:
                cells += ["—", "—"]
                continue
            if how == "lat_ns":
                ns = st["median"]
            elif how == "lat_us":
                ns = st["median"] * 1e3
            elif how in ("ops", "iops"):
                ns = 1e9 / st["median"]
            else:  # MB/s -> per chunk
                chunk = 4096 if key.startswith("file_") else (1 << 20 if key.startswith("disk_") else 131072)
                ns = chunk / (st["median"] * 1e6) * 1e9
            cells += ["%.0f" % ns if ns >= 10 else "%.1f" % ns, fmt(1e9 / ns, "ops")]
        md.append("| %s | %s |" % (key, " | ".join(cells)))
    md.append("")
    if altruns:
        md.append("Boot time with another kernel flavour (same initramfs and QEMU command line, boot-only guests; ms, median [min..max]):\n")
        md.append("| kernel | accel | runs ok | QEMU start -> init line | -> QEMU exit | guest uptime at init |")
        md.append("|---|---|---|---|---|---|")
        groups = {}
        for r in altruns:
            groups.setdefault((r.get("flavor"), r["accel"]), []).append(r)
        out["alt_flavours"] = {}
        for (fl, acc), rs in sorted(groups.items()):
            ok = [r for r in rs if r.get("ok")]
            cols = []
            for k in ("boot_to_init_s", "boot_to_poweroff_s", "guest_uptime_at_init_s"):
                st = stats([r.get(k) * 1e3 for r in ok if r.get(k)])
                out["alt_flavours"]["%s/%s/%s" % (fl, acc, k)] = st
                cols.append("**%.0f** [%.0f..%.0f]" % (st["median"], st["min"], st["max"]) if st else "—")
            kv = (ok[0].get("kernel_pkg") if ok else None) or fl
            md.append("| %s | %s | %d/%d | %s |" % (kv, acc, len(ok), len(rs), " | ".join(cols)))
        md.append("")
        json.dump(out, open(a.json, "w"), indent=1)
    md.append("Per-run figures (boot in ms; host state just before the run: CPU busy % "
              "over 2 s / 1-min loadavg / other qemu-system processes running):\n")
    md.append("| run | ok | QEMU start -> init line | -> QEMU exit | guest uptime at init | host before run |")
    md.append("|---|---|---|---|---|---|")
    for r in sorted((r for r in allruns if r["kind"] == "vm"), key=lambda r: r["log"]):
        ld = r.get("host_load_start") or {}
        md.append("| %s | %s | %s | %s | %s | %s%% / %s / %s |" % (
            os.path.basename(r["log"]).replace(".log", ""), "yes" if r.get("ok") else "**no**",
            "%.0f" % (r["boot_to_init_s"] * 1e3) if r.get("boot_to_init_s") else "—",
            "%.0f" % (r["t_exit_s"] * 1e3),
            "%.0f" % (r["guest_uptime_at_init_s"] * 1e3) if r.get("guest_uptime_at_init_s") else "—",
            ld.get("busy_pct"), ld.get("loadavg1"), ld.get("foreign_qemu")))
    for r in sorted((r for r in allruns if r["kind"] == "host"), key=lambda r: r["log"]):
        inf = r.get("info", {})
        try:
            hl = json.loads(inf.get("host_load_before", "{}"))
        except ValueError:
            hl = {}
        md.append("| %s | yes | n/a | n/a | n/a | %s%% / %s / %s |" % (
            os.path.basename(r["log"]).replace(".log", ""), inf.get("host_busy_pct_before"),
            hl.get("loadavg1"), hl.get("foreign_qemu")))
    md.append("")
    md.append("## Failures and caveats\n")
    if out["failures"]:
        seen = set()
        for f in out["failures"]:
            s = "- %s/%s: %s%s" % (f["env"], f.get("mode") or "-", (f.get("benchmark") + ": ") if f.get("benchmark") else "", f.get("error"))
            if f.get("log"):
                s += " (log `%s`)" % os.path.relpath(f["log"], os.path.dirname(os.path.abspath(a.md)))
            if s in seen:
                continue
            seen.add(s)
            md.append(s)
            code = [t for t in (f.get("tail") or []) if "Code=" in t]
            if code:
                m = re.search(r"<([0-9a-f]{2})>((?: [0-9a-f]{2}){0,7})", code[0])
                if m:
                    md.append("  - instruction bytes at the guest's RIP: `%s%s`%s" % (
                        m.group(1), m.group(2),
                        " (lock cmpxchg16b)" if (m.group(1) + m.group(2)).startswith("f0 48 0f c7") else ""))
            elif f.get("tail"):
                md.append("  - last serial lines: `%s`" % " / ".join(t.strip() for t in f["tail"] if t.strip())[:400])
    else:
        md.append("- none")
    for c in meta.get("caveats", []):
        md.append("- " + c)
    md.append("")
    open(a.md, "w").write("\n".join(md) + "\n")
    print("wrote %s and %s" % (a.json, a.md))
    return 0


def main():
    ap = argparse.ArgumentParser()
    sp = ap.add_subparsers(dest="cmd", required=True)
    v = sp.add_parser("vm")
    v.add_argument("--accel", required=True)
    v.add_argument("--mode", default="full")
    v.add_argument("--kernel", required=True)
    v.add_argument("--initrd", required=True)
    v.add_argument("--append", default="")
    v.add_argument("--smp", type=int, default=2)
    v.add_argument("--mem", default="512M")
    v.add_argument("--timeout", type=float, default=900)
    v.add_argument("--init-timeout", type=float, default=0)
    v.add_argument("--flavor", default="")
    v.add_argument("--cpu", default="")
    v.add_argument("--base-append", default="console=ttyS0 quiet panic=-1")
    v.add_argument("--kernel-pkg", default="")
    v.add_argument("--quiet-max-wait", type=float, default=120)
    v.add_argument("--quiet-threshold", type=float, default=25)
    v.add_argument("--qemu-pre", default="", help="QEMU options before the others (machine, firmware)")
    v.add_argument("--qemu-post", default="", help="QEMU options after the others (drives, devices)")
    v.add_argument("--log", required=True)
    v.add_argument("--out", required=True)
    q = sp.add_parser("quiet")
    q.add_argument("--max-wait", type=float, default=120)
    q.add_argument("--threshold", type=float, default=25)
    h = sp.add_parser("host")
    h.add_argument("--log", required=True)
    h.add_argument("--out", required=True)
    r = sp.add_parser("report")
    r.add_argument("--runs", required=True)
    r.add_argument("--meta", required=True)
    r.add_argument("--json", required=True)
    r.add_argument("--md", required=True)
    a = ap.parse_args()
    return {"vm": cmd_vm, "host": cmd_host, "report": cmd_report, "quiet": cmd_quiet}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
