#!/usr/bin/env python3
"""Gatehouse benchmark driver: see bench/run.sh. Prints figures; never asserts on time."""

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

SUITE = sys.argv[1] if len(sys.argv) > 1 else "all"
BIN = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "target/release")
SMOKE = SUITE == "smoke"
HERE = os.path.dirname(os.path.abspath(__file__))
CPUS = os.cpu_count() or 1
PROXY_CPU, LOAD_CPU = ("1", "0") if CPUS >= 2 else ("0", "0")

started = []


def log(*args):
    print(*args, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def spawn(cmd, cpu=None, **kw):
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", cpu] + cmd
    log_path = os.path.join(tempfile.gettempdir(), f"gatehouse-bench-{os.path.basename(cmd[-1] if cpu is None else cmd[3])}-{len(started)}.log")
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log_path, "w"), text=True, **kw)
    p.log_path = log_path
    started.append(p)
    return p


def stop_all():
    for p in started:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in started:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    started.clear()


def need_packages():
    missing = [p for p in ("nginx", "haproxy", "wrk") if not shutil.which(p) and not os.path.exists(f"/usr/sbin/{p}")]
    if not missing:
        return True
    log(f"installing {' '.join(missing)} from Debian ...")
    try:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-qq"], env=env)
        run(["apt-get", "install", "-y", "-qq", "nginx", "haproxy", "wrk"], env=env)
        return True
    except Exception as e:  # noqa: BLE001 - reported, and the suite is skipped
        log(f"cannot install {missing}: {e}")
        return False


def binary(name):
    path = os.path.join(BIN, name)
    if not os.path.exists(path):
        sys.exit(f"{path} is missing: build the workspace first")
    return path


def free_ports(names):
    """Ports nothing listens on now: bound on 127.0.0.1:0 together, noted, released."""
    import socket
    sockets = []
    try:
        for _ in names:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return {name: s.getsockname()[1] for name, s in zip(names, sockets)}
    finally:
        for s in sockets:
            s.close()


class PortTaken(RuntimeError):
    """Something outside the benchmark holds a port it needs: not a Gatehouse failure."""


def wait_port(port, timeout=15, proc=None):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc is not None and proc.poll() is not None:
            log_text = open(proc.log_path).read()[-2000:] if getattr(proc, "log_path", None) else ""
            if "in use" in log_text.lower():
                raise PortTaken(f"127.0.0.1:{port} is held by another process")
            raise RuntimeError(f"the process for 127.0.0.1:{port} exited: {log_text}")
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port}")


def rss_peak_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def backend_connections(pids, backend_port):
    """Established TCP connections from these processes to the backend's port (ss -tnp; NaN
    without iproute2's ss)."""
    if not shutil.which("ss"):
        return float("nan")
    out = subprocess.run(["ss", "-Htnp", "state", "established", f"( dport = :{backend_port} )"],
                         capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if any(f"pid={pid}," in line for pid in pids))


def children(pid):
    try:
        out = run(["pgrep", "-P", str(pid)]).stdout.split()
        return [int(p) for p in out]
    except subprocess.CalledProcessError:
        return []


# === proxy suite ===

def make_pki(work):
    def ossl(*a):
        run(["openssl", *a], cwd=work)
    ossl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
         "-out", "ca.pem", "-days", "30", "-subj", "/CN=Bench CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign")
    for name, ext in (("backend", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("front", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        ossl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", f"/CN=bench-{name}")
        with open(os.path.join(work, f"{name}.ext"), "w") as f:
            f.write(ext + "\n")
        ossl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "30", "-extfile", f"{name}.ext", "-out", f"{name}.pem")
    ossl("pkcs12", "-export", "-inkey", "client.key", "-in", "client.pem", "-passout", "pass:bench", "-out", "client.pfx")
    ossl("pkcs12", "-export", "-inkey", "front.key", "-in", "front.pem", "-passout", "pass:bench", "-out", "front.pfx")
    for name in ("client", "front"):
        with open(os.path.join(work, f"{name}-combined.pem"), "w") as f:
            f.write(open(os.path.join(work, f"{name}.pem")).read() + open(os.path.join(work, f"{name}.key")).read())
    fp = run(["openssl", "x509", "-in", "client.pem", "-noout", "-fingerprint", "-sha1"], cwd=work).stdout
    return fp.split("=")[1].strip().replace(":", "").lower()


NGINX_BACKEND = """
worker_processes 1;
pid {work}/backend.pid;
error_log {work}/backend-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  server {{
    # http2: offered by ALPN; only gatehouse-h2 (--backend-http2) takes it, the other proxies
    # speak HTTP/1.1 to the backend as before.
    listen 127.0.0.1:{port} ssl http2;
    http2_max_requests 1000000;
    ssl_certificate {work}/backend.pem;
    ssl_certificate_key {work}/backend.key;
    ssl_client_certificate {work}/ca.pem;
    ssl_verify_client on;
    keepalive_requests 1000000;
    location / {{
      add_header X-Client-Thumbprint $ssl_client_fingerprint always;
      return 200 "ok\\n";
    }}
  }}
}}
"""

NGINX_PROXY = """
worker_processes 1;
pid {work}/nginx-proxy.pid;
error_log {work}/nginx-proxy-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  upstream backend {{ server 127.0.0.1:{backend}; keepalive 128; keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{port}{listen_tls};
    keepalive_requests 1000000;
    location / {{
      proxy_pass https://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_certificate {work}/client.pem;
      proxy_ssl_certificate_key {work}/client.key;
      proxy_ssl_trusted_certificate {work}/ca.pem;
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
    }}
  }}
}}
"""

HAPROXY = """
global
  nbthread 1
  maxconn 4096
  pidfile {work}/haproxy.pid
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:{port}{bind_tls}
  default_backend be
backend be
  server s1 127.0.0.1:{backend} ssl crt {work}/client-combined.pem ca-file {work}/ca.pem verify required sni str(localhost) verifyhost localhost
"""


def front_url(port, tls):
    return f"https://localhost:{port}/bench" if tls else f"http://127.0.0.1:{port}/bench"


def check_presents(port, thumbprint, tls=False, ca=None):
    import ssl
    context = ssl.create_default_context(cafile=ca) if tls else None
    req = urllib.request.Request(front_url(port, tls))
    with urllib.request.urlopen(req, timeout=5, context=context) as r:
        seen = r.headers.get("X-Client-Thumbprint", "")
        if r.status != 200 or seen.lower() != thumbprint:
            raise RuntimeError(f"port {port}: status {r.status}, backend saw {seen!r}, expected {thumbprint}")


def wrk(port, connections, seconds, tls=False, new_connections=False):
    extra = ["-H", "Connection: close"] if new_connections else []
    out = run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *extra,
               front_url(port, tls)]).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    lat = {}
    for q in ("50", "99"):
        m = re.search(rf"\s{q}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out)
        v = float(m.group(1))
        lat[q] = v / 1000 if m.group(2) == "us" else v if m.group(2) == "ms" else v * 1000
    return rps, lat, errors


def proxy_suite():
    front_suite(tls=False)


def https_suite():
    front_suite(tls=True)


def front_suite(tls):
    """Client -> proxy -> mTLS backend, Gatehouse vs nginx vs HAProxy; with `tls` the client
    side is HTTPS too (same certificate, TLS 1.3, keep-alive), plus a handshake-rate run."""
    label = "https" if tls else "proxy"
    if not need_packages():
        log(f"{label} suite skipped: nginx, haproxy or wrk unavailable")
        return
    work = tempfile.mkdtemp(prefix="gatehouse-bench-")
    thumbprint = make_pki(work)
    ports = free_ports(["backend", "gatehouse", "gatehouse-h2", "nginx", "haproxy", "cp", "dp-admin", "dp-h2-admin"])
    with open(f"{work}/backend.conf", "w") as f:
        f.write(NGINX_BACKEND.format(work=work, port=ports["backend"]))
    with open(f"{work}/nginx-proxy.conf", "w") as f:
        listen_tls = (f" ssl;\n    ssl_certificate {work}/front.pem;\n    ssl_certificate_key {work}/front.key;\n"
                      f"    ssl_protocols TLSv1.2 TLSv1.3") if tls else ""
        f.write(NGINX_PROXY.format(work=work, port=ports["nginx"], backend=ports["backend"], listen_tls=listen_tls))
    with open(f"{work}/haproxy.cfg", "w") as f:
        bind_tls = f" ssl crt {work}/front-combined.pem alpn http/1.1" if tls else ""
        f.write(HAPROXY.format(work=work, port=ports["haproxy"], backend=ports["backend"], bind_tls=bind_tls))
    try:
        backend = spawn(["nginx", "-c", f"{work}/backend.conf", "-g", "daemon off;"], cpu=LOAD_CPU)
        wait_port(ports["backend"], proc=backend)
        cp = spawn([binary("gatehouse-cp"), "--data-dir", f"{work}/cp", "--listen", f"127.0.0.1:{ports['cp']}",
                    "--admin-listen", "none", "--log", "warn"])
        wait_port(ports["cp"], proc=cp)
        ctl = [binary("gatehousectl"), "--server", f"https://127.0.0.1:{ports['cp']}", "--ca-file", f"{work}/cp/tls/ca.pem",
               "--token-file", f"{work}/cp/operator.token"]
        with open(f"{work}/pw", "w") as f:
            f.write("bench")
        run(ctl + ["cert", "upload", "a", "--pfx", f"{work}/client.pfx", "--password-file", f"{work}/pw"])
        run(ctl + ["api", "put", "bench", "--path", "/bench", "--service-url", f"https://localhost:{ports['backend']}",
                   "--client-cert", "a"])
        if tls:
            run(ctl + ["cert", "upload", "front", "--pfx", f"{work}/front.pfx", "--password-file", f"{work}/pw"])
            run(ctl + ["hostname", "put", "localhost", "--cert", "front", "--default"])
        # A gateway token connects as its own name: one per data plane.
        for dp in ("bench-dp", "bench-dp-h2"):
            token = run(ctl + ["token", "create", dp, "--role", "gateway"]).stdout.strip()
            with open(f"{work}/{dp}.token", "w") as f:
                f.write(token)
        proxies = {
            "gatehouse": spawn([binary("gatehouse-dp"), "--control-plane", f"https://127.0.0.1:{ports['cp']}",
                                "--control-plane-ca", f"{work}/cp/tls/ca.pem", "--token-file", f"{work}/bench-dp.token",
                                "--backend-ca-file", f"{work}/ca.pem",
                                *(["--listen", "none", "--listen-https"] if tls else ["--listen"]),
                                f"127.0.0.1:{ports['gatehouse']}",
                                "--name", "bench-dp", "--admin-listen", f"127.0.0.1:{ports['dp-admin']}", "--log", "warn"],
                               cpu=PROXY_CPU),
            # The same data plane offering HTTP/2 to the backend (measured beside, not instead).
            "gatehouse-h2": spawn([binary("gatehouse-dp"), "--control-plane", f"https://127.0.0.1:{ports['cp']}",
                                   "--control-plane-ca", f"{work}/cp/tls/ca.pem", "--token-file", f"{work}/bench-dp-h2.token",
                                   "--backend-ca-file", f"{work}/ca.pem", "--backend-http2",
                                   *(["--listen", "none", "--listen-https"] if tls else ["--listen"]),
                                   f"127.0.0.1:{ports['gatehouse-h2']}",
                                   "--name", "bench-dp-h2", "--admin-listen", f"127.0.0.1:{ports['dp-h2-admin']}",
                                   "--log", "warn"], cpu=PROXY_CPU),
            "nginx": spawn(["nginx", "-c", f"{work}/nginx-proxy.conf", "-g", "daemon off;"], cpu=PROXY_CPU),
            "haproxy": spawn(["haproxy", "-f", f"{work}/haproxy.cfg", "-db"], cpu=PROXY_CPU),
        }
        for name, p in proxies.items():
            try:
                wait_port(ports[name], proc=p)
            except PortTaken:
                raise
            except RuntimeError:
                raise RuntimeError(f"{name} did not start: {open(p.log_path).read()[-2000:]}")
        deadline = time.time() + 15
        while True:
            try:
                for name in ("gatehouse", "gatehouse-h2"):
                    check_presents(ports[name], thumbprint, tls, f"{work}/ca.pem")
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        rounds = 1 if SMOKE else 3
        duration, latency_duration, warm = (2, 1, 1) if SMOKE else (15, 8, 3)
        results = {name: {"rps": [], "p50": [], "p99": [], "p50_1": [], "p99_1": [], "hs": [], "held": []}
                   for name in proxies}
        for r in range(rounds):
            for name in proxies:  # interleaved: A B C, A B C, ...
                check_presents(ports[name], thumbprint, tls, f"{work}/ca.pem")
                wrk(ports[name], 64, warm, tls)
                rps, lat, errors = wrk(ports[name], 64, duration, tls)
                if errors:
                    raise RuntimeError(f"{name} round {r + 1}: {errors} errors: the run is void")
                # Connections to the backend the proxy holds right after 64 client connections.
                held = backend_connections([proxies[name].pid] + children(proxies[name].pid), ports["backend"])
                _, lat1, errors = wrk(ports[name], 1, latency_duration, tls)
                if errors:
                    raise RuntimeError(f"{name} round {r + 1}: {errors} errors in the latency run")
                res = results[name]
                if tls:
                    # A new TLS connection (full handshake) per request.
                    hs, _, _ = wrk(ports[name], 16, latency_duration, tls, new_connections=True)
                    res["hs"].append(hs)
                res["rps"].append(rps)
                res["held"].append(held)
                res["p50"].append(lat["50"])
                res["p99"].append(lat["99"])
                res["p50_1"].append(lat1["50"])
                res["p99_1"].append(lat1["99"])
                log(f"  round {r + 1} {name:<9} {rps:>10.0f} req/s  p50 {lat['50']:.3f} ms  p99 {lat['99']:.3f} ms"
                    f"  (1 conn: p50 {lat1['50']:.3f} ms p99 {lat1['99']:.3f} ms)  backend connections held {held}")
        rss = {}
        for name, p in proxies.items():
            pids = [p.pid] + children(p.pid)
            rss[name] = rss_peak_kib(pids) / 1024
        log("")
        front = "HTTPS (TLS 1.3, keep-alive)" if tls else "plain HTTP"
        log(f"proxy throughput, clients over {front}, proxy to backend over mTLS; proxy pinned to CPU {PROXY_CPU}"
            f" (1 core), load and backend on CPU {LOAD_CPU}; median of {rounds} interleaved rounds, {duration} s each,"
            f" 64 connections (latency: 1 connection)")
        log(f"{'proxy':<12} {'req/s':>10} {'req/s/core':>10} {'p50 ms':>8} {'p99 ms':>8} {'p50 ms 1c':>9} {'p99 ms 1c':>9} {'peak RSS MiB':>12} {'backend conns':>13}")
        med = {n: {k: statistics.median(v) for k, v in res.items() if v} for n, res in results.items()}
        for name in proxies:
            m = med[name]
            log(f"{name:<12} {m['rps']:>10.0f} {m['rps']:>10.0f} {m['p50']:>8.3f} {m['p99']:>8.3f} {m['p50_1']:>9.3f} {m['p99_1']:>9.3f} {rss[name]:>12.1f} {m['held']:>13.0f}")
        for ours in ("gatehouse", "gatehouse-h2"):
            for peer in ("nginx", "haproxy"):
                log(f"{ours}/{peer}: req/s x{med[ours]['rps'] / med[peer]['rps']:.2f}, "
                    f"p99 x{med[ours]['p99'] / med[peer]['p99']:.2f} (lower is better)")
        if tls:
            log("handshake rate: a new TLS connection per request, 16 connections")
            for name in proxies:
                log(f"  {name:<10} {med[name]['hs']:>10.0f} handshakes/s")
            for peer in ("nginx", "haproxy"):
                log(f"  gatehouse/{peer}: x{med['gatehouse']['hs'] / med[peer]['hs']:.2f}")
        log("gatehouse-h2: the same data plane with --backend-http2 (one multiplexed HTTP/2 connection to the backend)")
    finally:
        stop_all()
        for pidfile in ("backend.pid", "nginx-proxy.pid", "haproxy.pid"):
            try:
                os.kill(int(open(f"{work}/{pidfile}").read().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        shutil.rmtree(work, ignore_errors=True)


def routes_suite():
    """A request's cost at any configuration size: req/s through a data plane holding one API,
    beside one holding 10,000 APIs (the same binary, each pinned to the proxy CPU in turn), for
    a request to the API with the shortest prefix. Backend: nginx over mTLS, as in the proxy suite."""
    if not need_packages():
        log("routes suite skipped: nginx or wrk unavailable")
        return
    many = 200 if SMOKE else 10000
    work = tempfile.mkdtemp(prefix="gatehouse-bench-")
    thumbprint = make_pki(work)
    ports = free_ports(["backend", "cp1", "cp2", "dp1", "dp2", "admin1", "admin2"])
    with open(f"{work}/backend.conf", "w") as f:
        f.write(NGINX_BACKEND.format(work=work, port=ports["backend"]))
    with open(f"{work}/pw", "w") as f:
        f.write("bench")
    try:
        backend = spawn(["nginx", "-c", f"{work}/backend.conf", "-g", "daemon off;"], cpu=LOAD_CPU)
        wait_port(ports["backend"], proc=backend)
        data_planes = {}
        for name, cp, dp, admin, apis in (("1 API", "cp1", "dp1", "admin1", 0), (f"{many} APIs", "cp2", "dp2", "admin2", many)):
            cp_proc = spawn([binary("gatehouse-cp"), "--data-dir", f"{work}/{cp}", "--listen", f"127.0.0.1:{ports[cp]}",
                             "--admin-listen", "none", "--log", "warn"])
            wait_port(ports[cp], proc=cp_proc)
            ctl = [binary("gatehousectl"), "--server", f"https://127.0.0.1:{ports[cp]}", "--ca-file",
                   f"{work}/{cp}/tls/ca.pem", "--token-file", f"{work}/{cp}/operator.token"]
            run(ctl + ["cert", "upload", "a", "--pfx", f"{work}/client.pfx", "--password-file", f"{work}/pw"])
            # The benchmarked API has the shortest prefix; the others are deeper, in one revision.
            declared = [{"id": "bench", "path": "/bench", "serviceUrl": f"https://localhost:{ports['backend']}",
                         "credentials": {"certificateId": "a"}}]
            declared += [{"id": f"api-{i:05}", "path": f"/svc-{i:05}/v1/items", "serviceUrl": f"https://localhost:{ports['backend']}",
                          "credentials": {"certificateId": "a"}} for i in range(apis)]
            with open(f"{work}/{cp}.json", "w") as f:
                json.dump({"apiVersion": "gatehouse/v1", "kind": "Configuration", "apis": declared}, f)
            run(ctl + ["apply", "-f", f"{work}/{cp}.json"])
            token = run(ctl + ["token", "create", "bench-dp", "--role", "gateway"]).stdout.strip()
            with open(f"{work}/{dp}.token", "w") as f:
                f.write(token)
            data_planes[name] = (dp, spawn([binary("gatehouse-dp"), "--control-plane", f"https://127.0.0.1:{ports[cp]}",
                                            "--control-plane-ca", f"{work}/{cp}/tls/ca.pem", "--token-file", f"{work}/{dp}.token",
                                            "--backend-ca-file", f"{work}/ca.pem", "--listen", f"127.0.0.1:{ports[dp]}",
                                            "--name", "bench-dp", "--admin-listen", f"127.0.0.1:{ports[admin]}",
                                            "--log", "warn"], cpu=PROXY_CPU))
        for name, (dp, proc) in data_planes.items():
            wait_port(ports[dp], proc=proc)
            deadline = time.time() + 60
            while True:
                try:
                    check_presents(ports[dp], thumbprint)
                    break
                except Exception:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.2)
        rounds = 1 if SMOKE else 5
        duration, warm = (2, 1) if SMOKE else (10, 2)
        rps = {name: [] for name in data_planes}
        for r in range(rounds):
            for name, (dp, _) in data_planes.items():  # interleaved
                wrk(ports[dp], 64, warm)
                got, lat, errors = wrk(ports[dp], 64, duration)
                if errors:
                    raise RuntimeError(f"{name} round {r + 1}: {errors} errors: the run is void")
                rps[name].append(got)
                log(f"  round {r + 1} {name:<11} {got:>10.0f} req/s  p99 {lat['99']:.3f} ms")
        small, large = (statistics.median(v) for v in rps.values())
        log(f"routing at any size: median of {rounds} interleaved rounds, {duration} s each, 64 connections, data plane"
            f" pinned to CPU {PROXY_CPU}; request to the API with the shortest prefix")
        log(f"  1 API {small:.0f} req/s, {many} APIs {large:.0f} req/s: x{large / small:.3f}")
    finally:
        stop_all()
        try:
            os.kill(int(open(f"{work}/backend.pid").read().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        shutil.rmtree(work, ignore_errors=True)


# === the Rust harnesses ===

def harness(name, *args):
    out = run([binary(name), *map(str, args)]).stdout
    log(out.rstrip())


def propagation_suite():
    for n in ([2] if SMOKE else [1, 10, 50]):
        harness("gatehouse-switch-latency", "--data-planes", n, "--switches", 5 if SMOKE else 100)


def scale_suite():
    if SMOKE:
        harness("gatehouse-fleet-bench", "--apis", 50, "--certs", 5, "--data-planes", 1, "--rollouts", 3)
    else:
        harness("gatehouse-fleet-bench", "--apis", 10000, "--certs", 1000, "--data-planes", 1, "--rollouts", 50)
        harness("gatehouse-fleet-bench", "--apis", 1000, "--certs", 2, "--data-planes", 3, "--rollouts", 50)


def fanout_suite():
    if SMOKE:
        harness("gatehouse-fanout-bench", "--streams", "50", "--changes", 3, "--apis", 10)
    else:
        harness("gatehouse-fanout-bench", "--streams", "500,1000,2000,4000", "--changes", 50, "--apis", 100)


def rotation_suite():
    harness("gatehouse-rotation-bench", "--seconds", 3 if SMOKE else 30, "--clients", 8 if SMOKE else 64)


# === several control planes on etcd ===

def etcd_unavailable():
    """Why the ha suite cannot run on this machine (a reason outside the code), or None."""
    if os.environ.get("GATEHOUSE_BENCH_NO_ETCD"):
        return os.environ["GATEHOUSE_BENCH_NO_ETCD"]
    if not os.path.exists("/usr/bin/etcd"):
        return "/usr/bin/etcd is missing (Debian's etcd-server; bash .ci/deps installs it)"
    return None


def ha_suite():
    """sled vs etcd (1 and 3 members): PutApi latency and throughput; failover when a control
    plane is SIGKILLed; propagation to a fleet split over two control planes."""
    reason = etcd_unavailable()
    if reason:
        log(f"ha suite skipped: {reason}")
        return
    if SMOKE:
        harness("gatehouse-ha-bench", "writes", "--writes", 20, "--writers", 8, "--rounds", 1)
        harness("gatehouse-ha-bench", "failover", "--data-planes", 2, "--rounds", 1)
        harness("gatehouse-ha-bench", "propagation", "--data-planes", 2, "--changes", 5)
    else:
        harness("gatehouse-ha-bench", "writes", "--writes", 500, "--writers", 8, "--rounds", 3)
        harness("gatehouse-ha-bench", "failover", "--data-planes", 10, "--rounds", 5)
        harness("gatehouse-ha-bench", "propagation", "--data-planes", 10, "--changes", 200)


SUITES = {"proxy": proxy_suite, "https": https_suite, "routes": routes_suite, "propagation": propagation_suite,
          "scale": scale_suite, "fanout": fanout_suite, "rotation": rotation_suite, "ha": ha_suite}

if __name__ == "__main__":
    os.environ.setdefault("GATEHOUSE_BENCH", "1")
    chosen = list(SUITES) if SUITE in ("all", "smoke") else [SUITE]
    if any(s not in SUITES for s in chosen):
        sys.exit(f"unknown suite {SUITE}: use all, {', '.join(SUITES)} or smoke")
    log(f"machine: {CPUS} cores, {os.uname().release}; binaries from {BIN}")
    try:
        for s in chosen:
            log(f"\n== {s} ==")
            try:
                SUITES[s]()
            except PortTaken as e:
                # A reason outside the code: say so plainly, and go on with the other suites.
                log(f"{s} suite could not run: {e} (another program on this machine; not a Gatehouse failure)")
    finally:
        stop_all()
    log("\nbench smoke done" if SMOKE else "")
