#!/usr/bin/env python3
"""Lambda function measurements: binary size, cold start, warm invocations and peak memory.

A Lambda Runtime API emulator (what `cargo lambda watch` does, reduced to what measuring needs):
for each function binary it serves the Runtime API the `lambda_runtime` crate speaks on a free
loopback port, spawns the binary with the Lambda environment plus the functions' environment
(the env file written by scripts/provision.py, pointing at an AWS emulator), and hands it one
representative event at a time:

    GET  /2018-06-01/runtime/invocation/next            long poll; answers one event
    POST /2018-06-01/runtime/invocation/{id}/response   the function's answer
    POST /2018-06-01/runtime/invocation/{id}/error      an invocation error (fails the run)
    POST /2018-06-01/runtime/init/error                 an init error (fails the run)

Measured per function:
  * binary size, and the size of the zip Lambda is given (the binary as `bootstrap`, deflated
    at zlib's default level, as `cargo lambda build --output-format zip` packs it);
  * init: from spawning the process to its first request for an event (the runtime asks only
    once the function's start-up is done), median of --cold process starts;
  * cold start: from spawning the process to receiving the answer to the first event (queued
    before the spawn), median of --cold process starts;
  * warm invocations: --warm further events on the first process, each timed from the moment
    the emulator hands the event out to the moment it has read the answer (median and p90);
  * peak memory: VmHWM of /proc/PID/status after the last warm invocation.

Every event goes through the function's real handler and its AWS calls (against the emulator
named by AWS_ENDPOINT_URL in the env file); an answer other than the expected status, an
invocation error or a process that dies fails the run (exit status 1).

    .venv/bin/python scripts/lambda_harness.py --bin-dir target/release \
        --env-file .local/bench.env --template infra/template.yaml \
        [--warm 20] [--cold 3] [--json-out .local/bench-lambda.json] [function ...]

Python 3.10+ standard library plus PyYAML. Access tokens for the authenticated routes are real
ES256 JWTs signed by the emulator's KMS signing key (KMS Sign through a SigV4-signed request).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import hmac
import http.server
import io
import json
import math
import os
import queue
import secrets
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass, field

import cfn_yaml

RUNTIME_PREFIX = "/2018-06-01/runtime"
ACCOUNT_ID = "123456789012"
INVOKE_TIMEOUT_S = 60.0  # per invocation (cold start included); the template's Timeout is 10 s
USER_AGENT = "portcullis-lambda-harness/1.0"  # not a browser: never refused as outdated
MIB = 1024 * 1024
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class HarnessError(Exception):
    pass


# ---- template and env file -----------------------------------------------------------------




def load_template(path):
    return cfn_yaml.load(path)


@dataclass
class FunctionSpec:
    logical_id: str
    binary: str
    memory_mb: int
    architecture: str
    timeout_s: int


def template_functions(template):
    """binary name → FunctionSpec, for every AWS::Serverless::Function of the template."""
    glob = ((template.get("Globals") or {}).get("Function")) or {}
    out = {}
    for logical_id, res in (template.get("Resources") or {}).items():
        if (res or {}).get("Type") != "AWS::Serverless::Function":
            continue
        props = res.get("Properties") or {}
        binary = ((res.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
        if not binary:
            continue
        arch = props.get("Architectures") or glob.get("Architectures") or ["x86_64"]
        out[binary] = FunctionSpec(
            logical_id=logical_id,
            binary=binary,
            memory_mb=int(props.get("MemorySize", glob.get("MemorySize", 128))),
            architecture=str(arch[0]),
            timeout_s=int(props.get("Timeout", glob.get("Timeout", 3))),
        )
    return out


def load_env_file(path):
    """KEY='value' lines as scripts/provision.py writes them (sh quoting), KEY=value too."""
    env = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                line = line[len("export ") :]
            name, sep, raw = line.partition("=")
            if not sep or not name.isidentifier():
                raise HarnessError(f"{path}:{number}: not a KEY=VALUE line")
            try:
                words = shlex.split(raw, posix=True)
            except ValueError as err:
                raise HarnessError(f"{path}:{number}: {err}") from err
            env[name] = "".join(words)
    return env


# ---- a minimal AWS client (SigV4, JSON protocol): KMS for minting access tokens --------------


def _sign(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def aws_json_call(env, service, target, payload):
    """One AWS JSON-1.1 call (e.g. KMS) to AWS_ENDPOINT_URL, signed with SigV4."""
    endpoint = env.get("AWS_ENDPOINT_URL")
    if not endpoint:
        raise HarnessError("the env file has no AWS_ENDPOINT_URL (an emulator is expected)")
    region = env.get("AWS_REGION", "us-east-1")
    access_key = env.get("AWS_ACCESS_KEY_ID", "test")
    secret_key = env.get("AWS_SECRET_ACCESS_KEY", "test")
    url = urllib.parse.urlsplit(endpoint)
    host = url.netloc
    body = json.dumps(payload).encode()
    now = dt.datetime.now(dt.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = now.strftime("%Y%m%d")
    headers = {
        "content-type": "application/x-amz-json-1.1",
        "host": host,
        "x-amz-date": amz_date,
        "x-amz-target": target,
    }
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            "POST",
            url.path or "/",
            "",
            "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
            signed,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _sign(_sign(_sign(_sign(("AWS4" + secret_key).encode(), day), region), service), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, "
        f"Signature={signature}"
    )
    request = urllib.request.Request(endpoint.rstrip("/") + "/", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        raise HarnessError(f"{target} failed: {err.code} {err.read()[:300]!r}") from err
    except OSError as err:
        raise HarnessError(f"{target}: no emulator answers at {endpoint} ({err})") from err


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _der_int(buf, i):
    if buf[i] != 0x02:
        raise HarnessError("KMS signature: not a DER INTEGER")
    length = buf[i + 1]
    i += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(buf[i : i + n], "big")
        i += n
    return int.from_bytes(buf[i : i + length], "big"), i + length


def der_to_raw_es256(der):
    """ECDSA DER signature → JWS r||s (32 + 32 bytes), low-S normalised like the functions do."""
    if der[0] != 0x30:
        raise HarnessError("KMS signature: not a DER SEQUENCE")
    i = 2 if not der[1] & 0x80 else 2 + (der[1] & 0x7F)
    r, i = _der_int(der, i)
    s, _ = _der_int(der, i)
    if s > P256_N // 2:
        s = P256_N - s
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


class TokenMinter:
    """Access tokens as the tokens service issues them (shared/src/crypto/jwt.rs): ES256 JWS,
    kid = base64url(SHA-256(SPKI)[..16]), signed by the KMS signing key of the env file."""

    def __init__(self, env):
        self.env = env
        self.key_id = env.get("PORTCULLIS_SIGNING_KEY_ID")
        if not self.key_id:
            raise HarnessError("the env file has no PORTCULLIS_SIGNING_KEY_ID")
        out = aws_json_call(env, "kms", "TrentService.GetPublicKey", {"KeyId": self.key_id})
        spki = base64.b64decode(out["PublicKey"])
        self.kid = b64url(hashlib.sha256(spki).digest()[:16])

    def claims(self, sub, roles=()):
        now = int(time.time())
        return {
            "iss": self.env.get("PORTCULLIS_TOKEN_ISSUER", "https://auth.portcullis.example"),
            "sub": sub,
            "aud": self.env.get("PORTCULLIS_TOKEN_AUDIENCE", "portcullis"),
            "iat": now,
            # Long enough for the whole run (verification only checks exp > now).
            "exp": now + 3600,
            "auth_time": now,
            "amr": ["pwd", "otp", "mfa"],
            "acr": "urn:portcullis:acr:mfa",
            "sid": "s_" + b64url(secrets.token_bytes(16)),
            "jti": b64url(secrets.token_bytes(16)),
            "roles": list(roles),
            "token_use": "access",
        }

    def issue(self, claims):
        header = {"alg": "ES256", "typ": "JWT", "kid": self.kid}
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        out = aws_json_call(
            self.env,
            "kms",
            "TrentService.Sign",
            {
                "KeyId": self.key_id,
                "Message": base64.b64encode(signing_input.encode()).decode(),
                "MessageType": "RAW",
                "SigningAlgorithm": "ECDSA_SHA_256",
            },
        )
        raw = der_to_raw_es256(base64.b64decode(out["Signature"]))
        return f"{signing_input}.{b64url(raw)}"


def gateway_claims(claims):
    """The claims as API Gateway's JWT authorizer passes them (strings; arrays as "[a b]"),
    like tools/local-gateway/src/server.rs `authorizer_claims`."""
    out = {}
    for key, value in claims.items():
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, list):
            out[key] = "[" + " ".join(v if isinstance(v, str) else json.dumps(v) for v in value) + "]"
        else:
            out[key] = json.dumps(value)
    return out


# ---- events ------------------------------------------------------------------------------------


def http_event(method, route_path, path_params=None, body=None, source_ip="198.18.0.1",
               bearer=None, claims=None):
    """An API Gateway HTTP API payload 2.0 event, shaped like tools/local-gateway/src/event.rs."""
    path_params = path_params or {}
    raw_path = route_path
    for name, value in path_params.items():
        raw_path = raw_path.replace("{" + name + "}", value)
    route_key = f"{method} {route_path}"
    now_ms = int(time.time() * 1000)
    request_id = str(uuid.uuid4())
    headers = {
        "accept": "application/json",
        "host": "auth.portcullis.example",
        "user-agent": USER_AGENT,
        "x-forwarded-for": source_ip,
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
        "x-amzn-trace-id": "Root=1-" + format(now_ms // 1000, "08x") + "-" + secrets.token_hex(12),
    }
    text = None
    if body is not None:
        text = json.dumps(body)
        headers["content-type"] = "application/json"
        headers["content-length"] = str(len(text.encode()))
    if bearer:
        headers["authorization"] = f"Bearer {bearer}"
    context = {
        "accountId": ACCOUNT_ID,
        "apiId": "harness",
        "domainName": "auth.portcullis.example",
        "domainPrefix": "auth",
        "http": {
            "method": method,
            "path": raw_path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": USER_AGENT,
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now_ms / 1000)),
        "timeEpoch": now_ms,
    }
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": gateway_claims(claims), "scopes": None}}
    event = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": context,
        "isBase64Encoded": False,
    }
    if path_params:
        event["pathParameters"] = dict(path_params)
    if text is not None:
        event["body"] = text
    return event


def scheduled_event():
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": "us-east-1",
        "resources": [f"arn:aws:scheduler:us-east-1:{ACCOUNT_ID}:schedule/default/inactive-sweep"],
        "detail": {},
    }


def sqs_event(body):
    """One SQS message, as the Lambda event source mapping delivers it."""
    message_id = str(uuid.uuid4())
    return {
        "Records": [{
            "messageId": message_id,
            "receiptHandle": f"harness-{message_id}",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:us-east-1:{ACCOUNT_ID}:portcullis-outbox",
            "awsRegion": "us-east-1",
        }],
    }


@dataclass
class Scenario:
    """The representative request of one function: description, expected answer, event maker."""

    describe: str
    expect: tuple  # accepted statusCode values (None: not an HTTP answer)
    make: object  # callable(n) -> event


class Events:
    """Builds each function's event. Every invocation gets its own user ID and source IP (from
    198.18.0.0/15, the benchmarking range), so lockouts and IP throttles never change the path
    being measured (the 5th failure on one ID would answer `locked` without checking a password)."""

    def __init__(self, env, need_tokens):
        self.run = secrets.token_hex(4)
        self.counter = 0
        self.ip_base = secrets.randbelow(1 << 16)
        self.minter = TokenMinter(env) if need_tokens else None
        self._tokens = {}

    def _next(self):
        self.counter += 1
        n = (self.ip_base + self.counter) % (1 << 17)
        ip = f"198.{18 + (n >> 16)}.{(n >> 8) & 0xFF}.{n & 0xFF}"
        return self.counter, ip

    def _token(self, roles=()):
        key = tuple(roles)
        if key not in self._tokens:
            claims = self.minter.claims(f"nobody-{self.run}@example.com", roles)
            self._tokens[key] = (self.minter.issue(claims), claims)
        return self._tokens[key]

    def _authed(self, method, path, roles=(), path_params=None):
        _, ip = self._next()
        token, claims = self._token(roles)
        return http_event(method, path, path_params=path_params, source_ip=ip, bearer=token,
                          claims=claims)

    def scenarios(self):
        def sign_in(_):
            n, ip = self._next()
            return http_event("POST", "/v1/sign-in", source_ip=ip, body={
                "user_id": f"nobody-{self.run}-{n}@example.com",
                "password": "correct horse battery staple",
            })

        def send_code(_):
            _, ip = self._next()
            return http_event("POST", "/v1/sign-in/{challenge_id}/codes", source_ip=ip,
                              path_params={"challenge_id": b64url(secrets.token_bytes(32))},
                              body={"method": "sms"})

        def verify(_):
            _, ip = self._next()
            return http_event("POST", "/v1/sign-in/{challenge_id}/verify", source_ip=ip,
                              path_params={"challenge_id": b64url(secrets.token_bytes(32))},
                              body={"method": "totp", "code": "123456"})

        def refresh(_):
            n, ip = self._next()
            user = b64url(f"nobody-{self.run}-{n}@example.com".encode())
            token = f"{user}.s_{b64url(secrets.token_bytes(16))}.{b64url(secrets.token_bytes(32))}"
            return http_event("POST", "/v1/tokens/refresh", source_ip=ip,
                              body={"refresh_token": token})

        def forgot(_):
            n, ip = self._next()
            return http_event("POST", "/v1/password/forgot", source_ip=ip,
                              body={"user_id": f"nobody-{self.run}-{n}@example.com"})

        return {
            "sign-in": Scenario(
                "`POST /v1/sign-in`, unknown user with a password (argon2id on the dummy hash, "
                "failure counted)", (401,), sign_in),
            "send-code": Scenario(
                "`POST /v1/sign-in/{id}/codes` {method: sms}, unknown challenge", (410, 404),
                send_code),
            "verify": Scenario(
                "`POST /v1/sign-in/{id}/verify` {method: totp}, unknown challenge", (410, 404),
                verify),
            "tokens": Scenario(
                "`POST /v1/tokens/refresh`, well-formed refresh token of an unknown session",
                (401,), refresh),
            "recovery-codes": Scenario(
                "`GET /v1/me/recovery-codes`, valid access token (KMS-signed) of no live session "
                "(401 after the session read: revocation is immediate)",
                (401,), lambda _: self._authed("GET", "/v1/me/recovery-codes")),
            "factors": Scenario(
                "`GET /v1/me/factors`, valid access token of no live session (401 after the "
                "session read)", (401,),
                lambda _: self._authed("GET", "/v1/me/factors")),
            "devices": Scenario(
                "`GET /v1/me/devices`, valid access token of no live session (401 after the "
                "session read)", (401,),
                lambda _: self._authed("GET", "/v1/me/devices")),
            "password": Scenario(
                "`POST /v1/password/forgot` for an unknown user ID (counted, nothing sent)",
                (202,), forgot),
            "admin": Scenario(
                "`GET /v1/admin/users/nobody/events`, valid token with role admin of no live "
                "session (401 after the session read)", (401,),
                lambda _: self._authed("GET", "/v1/admin/users/{user_id}/events", roles=("admin",),
                                       path_params={"user_id": "nobody"})),
            "sender": Scenario(
                "SQS batch of one outbox alert for an unknown user ID (read, dropped, no send)",
                (None,),
                lambda n: sqs_event(json.dumps({
                    "kind": "alert", "user_id": f"harness-nobody-{n}@example.com",
                    "alert": {"type": "lock_started"}}))),
            "inactive-sweep": Scenario(
                "EventBridge scheduled event (scans the whole table on the emulator)", (None,),
                lambda _: scheduled_event()),
        }


NEEDS_TOKEN = {"recovery-codes", "factors", "devices", "admin"}


# ---- the Runtime API -------------------------------------------------------------------------


@dataclass
class Invocation:
    request_id: str
    event: bytes
    handed_out: float | None = None
    answered: float | None = None
    kind: str | None = None  # "response" | "error"
    payload: bytes = b""
    done: threading.Event = field(default_factory=threading.Event)


class RuntimeApi:
    """One Runtime API endpoint for one process of one function."""

    def __init__(self, function_arn, timeout_s):
        self.function_arn = function_arn
        self.timeout_s = timeout_s
        self.pending = queue.Queue()
        self.invocations = {}
        self.init_error = None
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self):
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("content-length") or 0)
                return self.rfile.read(length) if length else b""

            def setup(self):
                super().setup()
                # Small writes go out at once (no Nagle wait on the client's delayed ACK).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _reply(self, status, body=b"", headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                # Status line, headers and body in one write (what end_headers + write would
                # send in two).
                self._headers_buffer.append(b"\r\n" + body)
                self.flush_headers()

            def do_GET(self):
                if self.path != f"{RUNTIME_PREFIX}/invocation/next":
                    return self._reply(404, b'{"errorMessage":"not found"}')
                while True:
                    try:
                        inv = api.pending.get(timeout=0.2)
                        break
                    except queue.Empty:
                        if api.stopping.is_set():
                            self.close_connection = True
                            return None
                deadline_ms = int(time.time() * 1000) + api.timeout_s * 1000
                trace = (f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};"
                         f"Parent={secrets.token_hex(8)};Sampled=0")
                inv.handed_out = time.perf_counter()
                self._reply(200, inv.event, {
                    "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": api.function_arn,
                    "Lambda-Runtime-Trace-Id": trace,
                })
                return None

            def do_POST(self):
                body = self._body()
                now = time.perf_counter()
                path = self.path
                if path == f"{RUNTIME_PREFIX}/init/error":
                    api.init_error = body.decode(errors="replace")
                    self._reply(202, b'{"status":"OK"}')
                    with api.lock:
                        for inv in api.invocations.values():
                            inv.done.set()
                    return
                prefix = f"{RUNTIME_PREFIX}/invocation/"
                if path.startswith(prefix):
                    request_id, _, kind = path[len(prefix):].partition("/")
                    with api.lock:
                        inv = api.invocations.get(request_id)
                    if inv is not None and kind in ("response", "error") and inv.kind is None:
                        inv.answered = now
                        inv.kind = kind
                        inv.payload = body
                        self._reply(202, b'{"status":"OK"}')
                        inv.done.set()
                        return
                    return self._reply(400, b'{"errorMessage":"unknown or answered invocation"}')
                self._reply(404, b'{"errorMessage":"not found"}')

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                # A killed function drops its connection: not an error of the measurement.
                if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    return
                super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def enqueue(self, event):
        inv = Invocation(request_id=str(uuid.uuid4()), event=json.dumps(event).encode())
        with self.lock:
            self.invocations[inv.request_id] = inv
        self.pending.put(inv)
        return inv

    def close(self):
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


# ---- running one function --------------------------------------------------------------------


@dataclass
class Process:
    proc: subprocess.Popen
    api: RuntimeApi
    log_path: str


def log_tail(path, lines=30):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def lambda_env(spec, func_env, port):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": "/var/task",
        "_HANDLER": "bootstrap",
        "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.logical_id}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "harness",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    env.update(func_env)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
    })
    return env


def wait_answer(name, process, inv):
    """Waits for the answer to `inv`; fails loudly on an error, an init error or a dead process."""
    deadline = time.monotonic() + INVOKE_TIMEOUT_S
    while not inv.done.wait(0.05):
        code = process.proc.poll()
        if code is not None:
            raise HarnessError(
                f"{name}: the process exited with status {code} before answering\n"
                + log_tail(process.log_path))
        if time.monotonic() > deadline:
            raise HarnessError(f"{name}: no answer within {INVOKE_TIMEOUT_S:.0f} s\n"
                               + log_tail(process.log_path))
    if process.api.init_error is not None:
        raise HarnessError(f"{name}: init error: {process.api.init_error}\n"
                           + log_tail(process.log_path))
    if inv.kind == "error":
        raise HarnessError(f"{name}: invocation error: {inv.payload.decode(errors='replace')}\n"
                           + log_tail(process.log_path))
    return inv


def answer_status(name, scenario, payload):
    try:
        answer = json.loads(payload or b"null")
    except ValueError as err:
        raise HarnessError(f"{name}: the answer is not JSON: {payload[:200]!r}") from err
    status = answer.get("statusCode") if isinstance(answer, dict) else None
    if status not in scenario.expect:
        raise HarnessError(f"{name}: answered {status!r} (expected {scenario.expect}): "
                           f"{payload[:400].decode(errors='replace')}")
    return status, answer


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise HarnessError(f"no VmHWM in /proc/{pid}/status")


def stop(process):
    if process.proc.poll() is None:
        process.proc.kill()
    try:
        process.proc.wait(timeout=10)
    finally:
        process.api.close()


def start(spec, binary_path, func_env, scenario, n, log_dir):
    """Queues the first event, then spawns the binary. Returns (process, invocation, t_spawn)."""
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{spec.logical_id}"
    api = RuntimeApi(arn, spec.timeout_s)
    inv = api.enqueue(scenario.make(n))
    log_path = os.path.join(log_dir, f"{spec.binary}.log")
    log = open(log_path, "ab")  # noqa: SIM115 (kept open for the child)
    try:
        t_spawn = time.perf_counter()
        proc = subprocess.Popen(
            [binary_path], env=lambda_env(spec, func_env, api.port), stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, cwd=log_dir,
        )
    except OSError as err:
        api.close()
        raise HarnessError(f"{spec.binary}: cannot start {binary_path}: {err}") from err
    finally:
        log.close()
    return Process(proc, api, log_path), inv, t_spawn


def p90(values):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def measure(spec, binary_path, func_env, scenario, warm, cold, log_dir):
    name = spec.binary
    cold_ms, init_ms, warm_ms = [], [], []
    peak_kib = None
    status = None
    first_answer = None
    n = 0
    for round_ in range(cold):
        n += 1
        process, inv, t_spawn = start(spec, binary_path, func_env, scenario, n, log_dir)
        try:
            wait_answer(name, process, inv)
            cold_ms.append((inv.answered - t_spawn) * 1000)
            init_ms.append((inv.handed_out - t_spawn) * 1000)
            st, answer = answer_status(name, scenario, inv.payload)
            if round_ == 0:
                status, first_answer = st, answer
                for _ in range(warm):
                    n += 1
                    w = process.api.enqueue(scenario.make(n))
                    wait_answer(name, process, w)
                    answer_status(name, scenario, w.payload)
                    warm_ms.append((w.answered - w.handed_out) * 1000)
                if process.proc.poll() is not None:
                    raise HarnessError(f"{name}: the process died after its last answer")
                peak_kib = vm_hwm_kib(process.proc.pid)
        finally:
            stop(process)
    size = os.path.getsize(binary_path)
    zipped = zip_size(binary_path)
    result = {
        "binary_bytes": size,
        "binary_mib": round(size / MIB, 2),
        "zip_bytes": zipped,
        "zip_mib": round(zipped / MIB, 2),
        "init_ms": round(statistics.median(init_ms), 2),
        "init_ms_all": [round(v, 2) for v in init_ms],
        "cold_start_ms": round(statistics.median(cold_ms), 2),
        "cold_start_ms_all": [round(v, 2) for v in cold_ms],
        "warm_ms_median": round(statistics.median(warm_ms), 2) if warm_ms else None,
        "warm_ms_p90": round(p90(warm_ms), 2) if warm_ms else None,
        "warm_invocations": len(warm_ms),
        "peak_rss_mib": round(peak_kib / 1024, 1) if peak_kib is not None else None,
        "memory_mb": spec.memory_mb,
        "architecture_configured": spec.architecture,
        "status": status,
        "request": scenario.describe,
    }
    if status is None and isinstance(first_answer, dict):
        result["answer"] = first_answer
    return result


def zip_size(binary_path):
    """Bytes of the deployment zip: the binary as `bootstrap`, deflated (zlib's default level)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(binary_path, "rb") as f:
            archive.writestr(info, f.read())
    return buffer.getbuffer().nbytes


# ---- report ------------------------------------------------------------------------------------


def fmt(v, digits=1):
    return "–" if v is None else f"{v:.{digits}f}"


def markdown(results, warm, cold, machine):
    lines = [
        "## Lambda functions: size, cold start, memory",
        "",
        f"Each release binary is run as Lambda runs it, against a Runtime API emulator "
        f"(`scripts/lambda_harness.py`) on loopback, its AWS calls going to the moto server: "
        f"zip = the deployment package (the binary as `bootstrap`, deflated); init = process "
        f"spawn until its first request for an event (start-up done), and cold start = process "
        f"spawn until the answer to the first event (queued before the spawn, so it includes "
        f"that event's AWS calls to the emulator on fresh connections), medians of {cold} "
        f"starts; then {warm} warm invocations on the first process, "
        f"each timed from hand-out to answer; peak memory = VmHWM after the last one. "
        f"These are {machine} release builds run on this machine, not arm64 on Lambda "
        f"(whose cold start adds the sandbox and code download, and whose CPU share follows "
        f"the configured memory).",
        "",
        "| function | binary (MiB) | zip (MiB) | init (ms) | cold start (ms) "
        "| warm invocation, median / p90 (ms) | peak memory (MiB) "
        "| memory configured (MiB) | request answered |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in results.items():
        status = r["status"] if r["status"] is not None else "ok"
        if r["status"] is None and isinstance(r.get("answer"), dict):
            status = "ok " + json.dumps(r["answer"], separators=(",", ":"))
        lines.append(
            f"| {name} | {r['binary_mib']:.1f} | {r['zip_mib']:.1f} | {fmt(r['init_ms'])} "
            f"| {fmt(r['cold_start_ms'])} "
            f"| {fmt(r['warm_ms_median'])} / {fmt(r['warm_ms_p90'])} "
            f"| {fmt(r['peak_rss_mib'])} | {r['memory_mb']} | {status}: {r['request']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True, help="directory of the function binaries")
    parser.add_argument("--env-file", required=True, help="env file written by scripts/provision.py")
    parser.add_argument("--template", required=True, help="infra/template.yaml")
    parser.add_argument("--warm", type=int, default=20, help="warm invocations (default 20)")
    parser.add_argument("--cold", type=int, default=3, help="cold starts (default 3)")
    parser.add_argument("--json-out", help="write the figures as JSON here")
    parser.add_argument("--log-dir", help="keep each function's output here (default: a "
                        "temporary directory, removed; the tail is shown on a failure)")
    parser.add_argument("functions", nargs="*", help="binary names (default: all of the template)")
    args = parser.parse_args(argv)
    if args.cold < 1 or args.warm < 0:
        parser.error("--cold must be ≥ 1 and --warm ≥ 0")
    try:
        specs = template_functions(load_template(args.template))
        names = args.functions or list(specs)
        unknown = [n for n in names if n not in specs]
        if unknown:
            raise HarnessError(f"not a function of the template: {', '.join(unknown)} "
                               f"(functions: {', '.join(specs)})")
        func_env = load_env_file(args.env_file)
        # The harness mints its access tokens with the emulator's KMS signing key (KMS Sign, no
        # crypto library here), so the functions verify them in the kms mode of token signing
        # (SPEC §6): at cold start KMS GetPublicKey, where the default envelope mode reads the
        # key record from DynamoDB instead (one GetItem either way).
        func_env = {**func_env, "PORTCULLIS_TOKEN_SIGNING": "kms"}
        events = Events(func_env, need_tokens=any(n in NEEDS_TOKEN for n in names))
        scenarios = events.scenarios()
        missing = [n for n in names if n not in scenarios]
        if missing:
            raise HarnessError(f"no representative request defined for: {', '.join(missing)}")
        results = {}
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="lambda-harness-") as tmp:
            log_dir = os.path.abspath(args.log_dir) if args.log_dir else tmp
            os.makedirs(log_dir, exist_ok=True)
            for name in names:
                path = os.path.abspath(os.path.join(args.bin_dir, name))
                if not os.access(path, os.X_OK):
                    raise HarnessError(f"{name}: no executable {path} (build the release binaries)")
                t = time.monotonic()
                results[name] = measure(specs[name], path, func_env, scenarios[name],
                                        args.warm, args.cold, log_dir)
                print(f"lambda_harness: {name}: zip {results[name]['zip_mib']:.1f} MiB, "
                      f"init {results[name]['init_ms']:.1f} ms, "
                      f"cold {results[name]['cold_start_ms']:.1f} ms, "
                      f"warm {fmt(results[name]['warm_ms_median'])} ms, "
                      f"{fmt(results[name]['peak_rss_mib'])} MiB "
                      f"({time.monotonic() - t:.1f} s)", file=sys.stderr)
        elapsed = time.monotonic() - started
        print(f"lambda_harness: {len(results)} functions in {elapsed:.1f} s", file=sys.stderr)
    except HarnessError as err:
        print(f"lambda_harness: FAILED: {err}", file=sys.stderr)
        return 1
    machine = os.uname().machine
    sys.stdout.write(markdown(results, args.warm, args.cold, machine))
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump({"machine": machine, "warm": args.warm, "cold": args.cold,
                       "functions": results}, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
