#!/usr/bin/env python3
"""IAM least-privilege check: each Lambda function in infra/template.yaml must be granted exactly
the AWS actions its Rust code can call, no more and no fewer.

    python3 scripts/check_iam.py [--template infra/template.yaml] [--verbose]

Exit 0 when every function matches; 1 on a mismatch (a readable diff per function: `+` an action
the code uses that the template does not grant, `-` a grant the code never uses); 2 when the
sources contain something the analysis does not model (so that it can never pass by not
looking). Needs PyYAML (the project's .venv has it).

What "needed" means, derived statically from the sources on every run (no per-function list to maintain):

1. Roots: every function crate functions/<f>/ (all of src/*.rs: the handler serves every route of
   the function, or every message of its event source: the sender's SQS batches) plus the cold
   start every function runs (`Deps::from_env` ->
   `DynamoStore::warm_up`, one GetItem; a denied warm-up only logs a warning, but it is a call
   the function makes on every cold start).
2. A call graph over functions/<f>/src/*.rs and shared/src/service/*.rs: `module::f(..)` paths
   (resolving `use` imports and aliases), bare calls to functions of the same module or imported
   ones, `Type::f(..)`, and method calls to methods defined in those files. Function-level, so
   a handler that only calls `tokens::authenticate` does not inherit what `tokens::refresh`
   needs. Paths may be fully qualified (`crate::service::sender::enqueue(..)`).
   One refinement, the outbox's fallback (OUTBOX_DISPATCH): `sender::enqueue(deps,
   Outgoing::V {..})` queues the message and, when the queue refuses it, delivers it within
   the request through `sender::deliver` -- but only through deliver's arm for V, so a call
   naming its variant reaches the queue plus that arm (audit::record's `Outgoing::Audit` needs
   the audit write again, not email and SMS); a call passing anything else reaches all of
   deliver. The arms must be exactly the variants of `enum Outgoing` (shared/src/outbox.rs).
3. The AWS primitives reached, each bound below (PRIMITIVES) to the production implementation
   whose SDK calls define its IAM actions, read from the sources too:
     deps.stores.<store>.<method>(..)  -> `impl <Trait> for DynamoStore` in
                                          shared/src/storage/dynamo.rs, through its helpers
                                          (`self.get` -> GetItem, `self.update` -> UpdateItem,
                                          transactions -> the action of each Put/Delete/Update;
                                          methods going through `self.for_audit()` -> the audit
                                          table, PORTCULLIS_AUDIT_TABLE, the others the main one)
     deps.mac.mac(..)                  -> KmsCodeMac::mac             (kms:GenerateMac)
     deps.sealer.seal / .open(..)      -> KmsSealer::seal / ::open    (kms:Encrypt / kms:Decrypt)
     deps.signer.get(..)               -> KmsSigner::connect          (kms:GetPublicKey)
     jwt::issue(..)                    -> KmsSigner::sign             (kms:Sign)
     deps.notifiers / .dispatch(..)    -> every `impl Notifier` in shared/src/notifier/ (the
                                          channel -> plugin mapping is configuration, so any
                                          send may use any of them: sns:Publish, ses:SendEmail)
     deps.outbox.enqueue(..)           -> `impl Outbox for SqsOutbox` in shared/src/outbox.rs
                                          (sqs:SendMessage; InlineOutbox and MemoryOutbox make
                                          no AWS call and are not production's queue)
   SDK operations map to IAM actions by name (send_message -> SendMessage), except where
   SDK_OP_ACTIONS says otherwise (SQS batch operations are authorised as the single action).
   The resource of each action comes from the template: the tables, keys and queue named by
   the functions' environment (PORTCULLIS_TABLE, PORTCULLIS_AUDIT_TABLE, PORTCULLIS_CODE_KEY_ID,
   ... -> alias -> key; PORTCULLIS_OUTBOX_QUEUE_URL = `!Ref OutboxQueue`, the queue's URL ->
   the queue, which a grant names by `!GetAtt OutboxQueue.Arn`; a grant on `!Ref` of a queue
   covers nothing). A grant on "*" where the code needs one resource is an over-grant.
4. Table encryption: the tables are encrypted with a customer managed key, and DynamoDB uses
   it on the caller's behalf, so a function that touches a table needs kms:Decrypt on its key.
   Grants on a table's key conditioned on kms:ViaService = dynamodb.<region>.amazonaws.com
   may also carry kms:GenerateDataKey / kms:Encrypt / kms:DescribeKey (DynamoDB asks for a new
   data key on writes): they are accepted as allowed extras, because the condition means the
   function itself can never use the key directly with them.
5. Event sources: HttpApi/Api/Schedule/ScheduleV2 events add nothing to a function's role. An
   SQS event (the sender on OutboxQueue) is an event source mapping whose poller -- Lambda,
   not the code -- receives, deletes and reads the attributes of the queue's messages: SAM
   attaches the AWS managed AWSLambdaSQSQueueExecutionRole (sqs:ReceiveMessage,
   sqs:DeleteMessage, sqs:GetQueueAttributes and logs, on "*": SAM's choice, not scoped to the
   queue) to the role itself, outside Policies. Those are neither needed from the code nor
   checked, and must not be granted inline (they would show as `-`). Any other
   event type is a guard (SAM_POLLER_EVENTS / PLAIN_EVENTS say which is which).

Guards (exit 2, "cannot check"): a `deps.<field>` the table does not know, a store, mac,
sealer, signer, notifier or outbox reached other than through `deps.` (an alias would hide
calls), a `deps.outbox` method other than enqueue, a file under shared/src or functions/ making
SDK calls that is not modelled, a DynamoDB table other than the main and audit tables, a
binding whose implementation has moved (including the outbox's enqueue/deliver shape, and a
queue setting that is not `!Ref` of an AWS::SQS::Queue), a policy form other than inline
statements, an event type not known to add nothing (or only SAM's poller policy) to the role, a
function crate without a template function (or the reverse), and a service module imported
by a file but never found called (a gap in the call-graph parser).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import deque
from fnmatch import fnmatchcase
from pathlib import Path

try:
    import yaml  # noqa: F401 - cfn_yaml needs it: a clear message if it is missing

    import cfn_yaml
except ImportError:  # pragma: no cover - the message is the point
    sys.exit("check_iam.py needs PyYAML: run it with .venv/bin/python (scripts/test.sh makes .venv)")


class CannotCheck(Exception):
    """The sources or the template contain something this analysis does not model."""


# ---- the explicit, verified table ------------------------------------------------------------

# Fields of `Deps` and whether they reach AWS (None: no AWS call; otherwise modelled below).
DEPS_FIELDS = {
    "settings": None,
    "clock": None,
    "hasher": None,
    "calls": None,
    "stores": "dynamodb",
    "mac": "mac",
    "code_keys": "code_keys",
    "sealer": "sealer",
    "signer": "signer",
    "notifiers": "notify",
    "outbox": "outbox",
}

# primitive -> (file under shared/src, impl header "Trait for Type" or "Type", fn, resource env)
PRIMITIVES = {
    "deps.mac.mac": ("crypto/keyed.rs", "CodeMac for KmsCodeMac", "mac", "PORTCULLIS_CODE_KEY_ID"),
    "deps.sealer.seal": ("crypto/keyed.rs", "SecretSealer for KmsSealer", "seal", "PORTCULLIS_DATA_KEY_ID"),
    "deps.sealer.open": ("crypto/keyed.rs", "SecretSealer for KmsSealer", "open", "PORTCULLIS_DATA_KEY_ID"),
    # The token signer (shared/src/signing.rs) in either mode: KMS (the public key once, then
    # Sign per token) or envelope (the key record from the table, the private key opened once).
    "deps.signer.get": ("crypto/jwt.rs", "KmsSigner", "connect", "PORTCULLIS_SIGNING_KEY_ID"),
    "signer (envelope): key record": ("storage/dynamo.rs", "KeyStore for DynamoStore", "get_signing_keys", "PORTCULLIS_TABLE"),
    # Sealed with the encryption context purpose=token-signing: a grant conditioned on it covers
    # this need (and no other Decrypt with that key). "|" separates the resource's setting from
    # the context the need carries.
    "signer (envelope): open the key": ("crypto/keyed.rs", "SecretSealer for KmsSealer", "open",
                                        "PORTCULLIS_DATA_KEY_ID|purpose=token-signing"),
    # The one-time-code MAC key (shared/src/code_keys.rs), envelope mode: the key record from the
    # table and the sealed key opened (context purpose=code-mac); KMS GenerateMac in kms mode,
    # before the first key, and for a MAC stored without a key ID.
    "code keys (envelope): key record": ("storage/dynamo.rs", "KeyStore for DynamoStore", "get_mac_keys", "PORTCULLIS_TABLE"),
    "code keys (envelope): open the key": ("crypto/keyed.rs", "SecretSealer for KmsSealer", "open",
                                           "PORTCULLIS_DATA_KEY_ID|purpose=code-mac"),
    "jwt::issue": ("crypto/jwt.rs", "TokenSigner for KmsSigner", "sign", "PORTCULLIS_SIGNING_KEY_ID"),
    "deps.outbox.enqueue": ("outbox.rs", "Outbox for SqsOutbox", "enqueue", "PORTCULLIS_OUTBOX_QUEUE_URL"),
    "cold start (Deps::from_env)": ("storage/dynamo.rs", "DynamoStore", "warm_up", "PORTCULLIS_TABLE"),
}
# How production wires each primitive (deps.rs), and which setting names its resource.
WIRING = [
    (r"KmsCodeMac::new\(", "code_key_id", "PORTCULLIS_CODE_KEY_ID"),
    (r"KmsSealer::new\(", "data_key_id", "PORTCULLIS_DATA_KEY_ID"),
    (r"SignerSlot::kms\(", "signing_key_id", "PORTCULLIS_SIGNING_KEY_ID"),
    (r"SignerSlot::envelope\(", "data_key_id", "PORTCULLIS_DATA_KEY_ID"),
    (r"CodeKeys::envelope\(", "data_key_id", "PORTCULLIS_DATA_KEY_ID"),
    (r"Stores::dynamo_with_audit\(", "table_name", "PORTCULLIS_TABLE"),
    (r"Stores::dynamo_with_audit\(", "audit_table_name", "PORTCULLIS_AUDIT_TABLE"),
    (r"SqsOutbox::new\(", "outbox_queue_url", "PORTCULLIS_OUTBOX_QUEUE_URL"),
    (r"\.warm_up\(\)", None, None),
]
TABLE_ENV = "PORTCULLIS_TABLE"
# DynamoStore methods that call `self.for_audit()` work on the audit table instead.
AUDIT_TABLE_ENV = "PORTCULLIS_AUDIT_TABLE"
AUDIT_RECEIVER = "for_audit"
# Files allowed to make SDK calls (`.send()`), and the IAM service of their calls.
SDK_FILES = {
    "storage/dynamo.rs": "dynamodb",
    "crypto/keyed.rs": "kms",
    "crypto/jwt.rs": "kms",
    "notifier/sns.rs": "sns",
    "notifier/email.rs": "ses",  # SES (v1) SendEmail is the IAM action ses:SendEmail
    "outbox.rs": "sqs",
}
# SDK operations whose IAM action is not the operation's own name (the default: send_message ->
# SendMessage). SQS has no separate actions for its batch operations: each is authorised as the
# single-message action.
SDK_OP_ACTIONS = {
    ("sqs", "send_message_batch"): "SendMessage",
    ("sqs", "delete_message_batch"): "DeleteMessage",
    ("sqs", "change_message_visibility_batch"): "ChangeMessageVisibility",
}
# Settings naming an SQS queue by its URL (`!Ref <AWS::SQS::Queue>`): IAM names the queue by its
# ARN, so the grant that covers the need is the one on `!GetAtt <queue>.Arn`.
QUEUE_URL_ENVS = {"PORTCULLIS_OUTBOX_QUEUE_URL"}
# The outbox's fallback (shared/src/service/sender.rs): `enqueue(deps, Outgoing::V {..})` queues
# the message (deps.outbox.enqueue) and, when the queue refuses it, delivers it within the
# request through the arm of `deliver` for V. A call naming its variant reaches only that arm;
# any other argument (a variable) reaches all of `deliver`. The enum is read from enum_file.
OUTBOX_DISPATCH = {"module": "sender", "queue_fn": "enqueue", "deliver_fn": "deliver",
                   "enum_file": "outbox.rs", "enum": "Outgoing"}
# Events that SAM turns into an event source mapping, adding the poller's permissions itself
# (an AWS managed policy on the role, outside Policies): the code never makes those calls, so
# they are neither needed nor checked. Any other event type that carries permissions is a guard.
SAM_POLLER_EVENTS = {"SQS": "AWSLambdaSQSQueueExecutionRole"}
# Event types that add nothing to the function's role (the invoking service's permission is a
# resource policy on the function).
PLAIN_EVENTS = {"Api", "HttpApi", "Schedule", "ScheduleV2"}
# Items of a TransactWriteItems/TransactGetItems call, by builder.
TRANSACT_ITEMS = {"Put": "PutItem", "Delete": "DeleteItem", "Update": "UpdateItem",
                  "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
TRANSACT_OPS = {"transact_write_items", "transact_get_items"}
# Accepted on the table's key when conditioned on kms:ViaService = dynamodb (see 4. above).
TABLE_KEY_EXTRAS = {"kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt", "kms:DescribeKey"}
# sns:Publish of a text message goes to a phone number, which has no ARN: only "*" allows it.
NOTIFY_RESOURCES = {"sns:Publish": "*"}


# ---- Rust source reading ---------------------------------------------------------------------

IDENT = r"[A-Za-z_]\w*"


def strip_rust(src: str) -> str:
    """Comments removed, string and char literals emptied; lines and braces kept."""
    out = []
    i, n = 0, len(src)
    raw = re.compile(r"b?r(#*)\"")
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
            continue
        if src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * src.count("\n", i, j))
            i = j
            continue
        m = raw.match(src, i)
        if m and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            end = '"' + m.group(1)
            j = src.find(end, m.end())
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * src.count("\n", i, j))
            i = j
            continue
        if c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            j += 1
            out.append('""' + "\n" * src.count("\n", i, j))
            i = j
            continue
        if c == "'":
            if i + 1 < n and src[i + 1] == "\\":  # '\n', '\'', '\u{..}'
                j = src.find("'", i + 3)
                i = n if j < 0 else j + 1
                out.append("' '")
                continue
            if i + 2 < n and src[i + 2] == "'":  # 'x'
                out.append("' '")
                i += 3
                continue
            out.append(c)  # a lifetime
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def match_brace(text: str, open_idx: int) -> int:
    depth = 0
    for j in range(open_idx, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    raise CannotCheck("unbalanced braces")


def blank(text: str, start: int, end: int) -> str:
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


def drop_cfg_test(text: str) -> str:
    while True:
        m = re.search(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]", text)
        if not m:
            return text
        brace, semi = text.find("{", m.end()), text.find(";", m.end())
        end = semi + 1 if semi >= 0 and (brace < 0 or semi < brace) else match_brace(text, brace) + 1
        text = blank(text, m.start(), end)


def skip_generics(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    if i < len(text) and text[i] == "<":
        depth = 0
        for j in range(i, len(text)):
            if text[j] == "<":
                depth += 1
            elif text[j] == ">" and text[j - 1] != "-":
                depth -= 1
                if depth == 0:
                    return j + 1
    return i


class RustFn:
    def __init__(self, module, name, impl_type, trait, has_self, body, line):
        self.module, self.name = module, name
        self.impl_type, self.trait = impl_type, trait
        self.has_self, self.body, self.line = has_self, body, line

    @property
    def label(self):
        owner = f"{self.impl_type}::" if self.impl_type else ""
        return f"{self.module}::{owner}{self.name}"


class RustFile:
    def __init__(self, path: Path, module: str, rel: str):
        self.path, self.module, self.rel = path, module, rel
        self.raw = path.read_text(encoding="utf-8")
        self.text = drop_cfg_test(strip_rust(self.raw))
        self.impls = self._impls()
        self.fns = self._fns()

    def line_of(self, idx: int) -> int:
        return self.text.count("\n", 0, idx) + 1

    def _impls(self):
        impls = []
        for m in re.finditer(r"\bimpl\b", self.text):
            before = self.text[: m.start()].rstrip()
            if before and before[-1] not in "};{]":
                continue  # `-> impl Trait`, `arg: impl Trait`
            brace = self.text.find("{", m.end())
            semi = self.text.find(";", m.end())
            if brace < 0 or 0 <= semi < brace:
                continue
            header = self.text[skip_generics(self.text, m.end()) : brace]
            header = re.sub(r"\bwhere\b.*", "", header, flags=re.S)
            trait, _, typ = header.rpartition(" for ")
            tname = re.findall(IDENT, re.sub(r"<.*", "", typ, flags=re.S))
            trname = re.findall(IDENT, re.sub(r"<.*", "", trait, flags=re.S))
            impls.append((brace, match_brace(self.text, brace),
                          tname[-1] if tname else None, trname[-1] if trname else None))
        return impls

    def _fns(self):
        fns = []
        for m in re.finditer(rf"\bfn\s+({IDENT})", self.text):
            i = skip_generics(self.text, m.end())
            if i >= len(self.text) or self.text[i] != "(":
                continue
            depth, j = 0, i
            while j < len(self.text):
                if self.text[j] == "(":
                    depth += 1
                elif self.text[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            params = self.text[i : j + 1]
            brace = self.text.find("{", j)
            semi = self.text.find(";", j)
            if brace < 0 or 0 <= semi < brace:
                continue  # a declaration without a body
            end = match_brace(self.text, brace)
            impl = None
            for s, e, typ, trait in self.impls:
                if s < m.start() < e and (impl is None or s > impl[0]):
                    impl = (s, e, typ, trait)
            fns.append(RustFn(self.module, m.group(1), impl[2] if impl else None,
                              impl[3] if impl else None, bool(re.search(r"\bself\b", params)),
                              self.text[brace : end + 1], self.line_of(m.start())))
        return fns

    def find(self, impl_header: str | None, name: str) -> RustFn | None:
        trait, _, typ = (impl_header or "").rpartition(" for ")
        for f in self.fns:
            if f.name != name:
                continue
            if impl_header is None and f.impl_type is None:
                return f
            if impl_header is not None and f.impl_type == typ and (f.trait or "") == trait:
                return f
        return None

    def uses(self):
        """(path segments, alias) of every `use` item, use-trees expanded."""
        out = []
        for m in re.finditer(r"\buse\s+([^;]+);", self.text):
            tokens = re.findall(r"::|\{|\}|,|\*|\w+", m.group(1))
            pos = 0

            def tree(prefix):
                nonlocal pos
                path, results = list(prefix), []
                while pos < len(tokens):
                    t = tokens[pos]
                    if t == "{":
                        pos += 1
                        while pos < len(tokens) and tokens[pos] != "}":
                            results += tree(path)
                            if pos < len(tokens) and tokens[pos] == ",":
                                pos += 1
                        pos += 1
                        return results
                    if t == "*":
                        pos += 1
                        return results + [(path + ["*"], None)]
                    path.append(t)
                    pos += 1
                    if pos < len(tokens) and tokens[pos] == "::":
                        pos += 1
                        continue
                    alias = None
                    if pos + 1 < len(tokens) and tokens[pos] == "as":
                        alias, pos = tokens[pos + 1], pos + 2
                    return results + [(path, alias)]
                return results

            while pos < len(tokens):
                out += tree([])
                if pos < len(tokens) and tokens[pos] == ",":
                    pos += 1
        return out


def snake_to_pascal(op: str) -> str:
    return "".join(part.capitalize() for part in op.split("_"))


def depth0(text: str) -> list[bool]:
    """For each character of text: whether it is outside every (), [] and {} opened in text."""
    out, depth = [], 0
    for c in text:
        if c in ")]}":
            depth -= 1
        out.append(depth == 0 and c not in "([{)]}")
        if c in "([{":
            depth += 1
    return out


def call_args(text: str, pos: int) -> list[str] | None:
    """The top-level arguments of the call whose `(` is the first non-space at or after pos."""
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos >= len(text) or text[pos] != "(":
        return None
    depth = 0
    for j in range(pos, len(text)):
        depth += text[j] in "([{"
        depth -= text[j] in ")]}"
        if depth == 0:
            inner = text[pos + 1 : j]
            top = depth0(inner)
            args, start = [], 0
            for k, c in enumerate(inner):
                if c == "," and top[k]:
                    args.append(inner[start:k].strip())
                    start = k + 1
            if inner[start:].strip():
                args.append(inner[start:].strip())
            return args
    return None


def enum_variants(text: str, name: str, where: str) -> list[str]:
    m = re.search(rf"\benum\s+{name}\b[^{{;]*\{{", text)
    if not m:
        raise CannotCheck(f"{where}: no enum {name}")
    body = text[m.end() : match_brace(text, m.end() - 1)]
    flat = body
    while True:  # drop fields, tuple types and attributes' brackets
        new = re.sub(r"\{[^{}]*\}|\([^()]*\)|\[[^\[\]]*\]", "", flat)
        if new == flat:
            break
        flat = new
    variants = [v.replace("#", "").strip() for v in flat.split(",")]
    variants = [v for v in variants if v]
    if not variants or not all(re.fullmatch(IDENT, v) for v in variants):
        raise CannotCheck(f"{where}: the variants of enum {name} are not readable ({flat.strip()[:80]})")
    return variants


def match_arms(body: str, enum: str, where: str) -> dict[str, str]:
    """{variant: arm body} of the one `match` in body whose arms are `enum::Variant` patterns."""
    found = []
    for mm in re.finditer(r"\bmatch\b", body):
        brace = body.find("{", mm.end())
        if brace < 0:
            continue
        block = body[brace + 1 : match_brace(body, brace)]
        top = depth0(block)
        pats = [p for p in re.finditer(rf"(?<![\w:])(?:{IDENT}\s*::\s*)*{enum}\s*::\s*({IDENT})\b", block)
                if top[p.start()]]
        if pats:
            found.append((block, top, pats))
    if len(found) != 1:
        raise CannotCheck(f"{where}: {len(found)} matches on {enum} (one expected)")
    block, top, pats = found[0]
    arrows = [a.start() for a in re.finditer(r"=>", block) if top[a.start()]]
    arms, bounds = {}, [p.start() for p in pats] + [len(block)]
    for i, p in enumerate(pats):
        j = p.end()
        while j < len(block) and block[j].isspace():
            j += 1
        if j < len(block) and block[j] in "({":
            j = match_brace(block.replace("(", "{").replace(")", "}"), j) + 1
        arrow = re.match(r"\s*=>", block[j:])
        if not arrow or p.group(1) in arms:
            raise CannotCheck(f"{where}: the arm {enum}::{p.group(1)} is not `{enum}::V {{..}} =>` (or is repeated)")
        arms[p.group(1)] = block[j + arrow.end() : bounds[i + 1]]
    if len(arrows) != len(pats):
        raise CannotCheck(f"{where}: the match on {enum} has arms other than {enum}::V patterns")
    return arms


# ---- SDK-level analysis: what each implementation function calls ------------------------------


class SdkFile:
    """A file that makes SDK calls: each fn's IAM actions, through its helpers in the file."""

    def __init__(self, rf: RustFile, service: str):
        self.rf, self.service = rf, service
        self.memo: dict[int, dict[str, str]] = {}

    def direct(self, fn: RustFn) -> dict[str, str]:
        found = {}
        for m in re.finditer(rf"\bclient\s*\.\s*({IDENT})\s*\(\s*\)", fn.body):
            op = m.group(1)
            if op in ("clone", "config"):
                continue
            where = f"{fn.label} -> client.{op}()"
            if op in TRANSACT_OPS:
                items = re.findall(r"\b(Put|Delete|Update|ConditionCheck|Get)\s*::\s*builder\s*\(", fn.body)
                if not items:
                    raise CannotCheck(f"{self.rf.rel}:{fn.line}: {op} with no recognisable items")
                for item in items:
                    found.setdefault(f"{self.service}:{TRANSACT_ITEMS[item]}", f"{where} [{item}]")
            else:
                action = SDK_OP_ACTIONS.get((self.service, op)) or snake_to_pascal(op)
                found.setdefault(f"{self.service}:{action}", where)
        return found

    def callees(self, fn: RustFn) -> list[RustFn]:
        out = []
        # Methods on `self`, `Self::`, and on another store made from self (`self.for_audit()`,
        # directly or bound to a local) -- not any `.get(` (HashMap::get is not DynamoStore::get).
        receivers = [r"\bself", rf"\b{AUDIT_RECEIVER}\s*\(\s*\)"]
        receivers += [rf"\b{m.group(1)}" for m in re.finditer(
            rf"\blet\s+({IDENT})\s*=\s*self\s*\.\s*{AUDIT_RECEIVER}\s*\(\s*\)", fn.body)]
        for recv in receivers:
            for m in re.finditer(rf"{recv}\s*\.\s*({IDENT})\s*\(", fn.body):
                out += [f for f in self.rf.fns if f.name == m.group(1) and f.impl_type is not None]
        for m in re.finditer(rf"\bSelf\s*::\s*({IDENT})\s*\(", fn.body):
            out += [f for f in self.rf.fns if f.name == m.group(1) and f.impl_type is not None]
        for m in re.finditer(rf"(?<![\w.:])({IDENT})\s*\(", fn.body):
            out += [f for f in self.rf.fns if f.name == m.group(1) and f.impl_type is None]
        return [f for f in out if f is not fn]

    def actions(self, fn: RustFn, stack=()) -> dict[str, str]:
        key = id(fn)
        if key in self.memo:
            return self.memo[key]
        if key in stack:
            return {}
        found = dict(self.direct(fn))
        for callee in self.callees(fn):
            for action, why in self.actions(callee, stack + (key,)).items():
                found.setdefault(action, f"{fn.label} -> {why}")
        self.memo[key] = found
        return found


# ---- the analysis ----------------------------------------------------------------------------


class Analysis:
    def __init__(self, root: Path):
        self.root = root
        self.shared = root / "shared" / "src"
        self.gaps: list[str] = []
        self.sdk = {rel: SdkFile(RustFile(self.shared / rel, rel, f"shared/src/{rel}"), svc)
                    for rel, svc in SDK_FILES.items()}
        self._check_sdk_files()
        self._check_wiring()
        self.store_traits = self._store_traits()
        self.prim_actions = self._primitive_actions()
        self.notify_actions = self._notify_actions()
        self.service_modules = self._service_modules()
        self.files: dict[str, RustFile] = {}
        for m in self.service_modules:
            self.files[m] = RustFile(self.shared / "service" / f"{m}.rs", m, f"shared/src/service/{m}.rs")
        self._check_outside_services()
        self.enqueue_fn, self.variant_fns = self._outbox_dispatch()
        for rf in self.files.values():
            self.check_imports(rf)

    # -- guards and bindings --

    def _check_sdk_files(self):
        for path in sorted(self.shared.rglob("*.rs")):
            rel = path.relative_to(self.shared).as_posix()
            text = strip_rust(path.read_text(encoding="utf-8"))
            if re.search(r"\.\s*send\s*\(\s*\)\s*\.\s*await", text) and rel not in SDK_FILES:
                raise CannotCheck(f"shared/src/{rel} makes SDK calls (.send().await) that check_iam.py "
                                  "does not model: add it to SDK_FILES and bind its entry points")
        for fdir in sorted((self.root / "functions").glob("*/src")):
            for path in fdir.rglob("*.rs"):
                if re.search(r"\.\s*send\s*\(\s*\)", strip_rust(path.read_text(encoding="utf-8"))):
                    raise CannotCheck(f"{path.relative_to(self.root)} makes SDK calls itself: not modelled")
        dyn = self.sdk["storage/dynamo.rs"].rf
        for fn in dyn.fns:
            if re.search(rf"\b{AUDIT_RECEIVER}\s*\(", fn.body) and not (fn.trait and fn.impl_type == "DynamoStore"):
                raise CannotCheck(f"shared/src/storage/dynamo.rs:{fn.line}: {fn.label} uses {AUDIT_RECEIVER}() "
                                  "outside a store trait method: not modelled")
        for m in re.finditer(r"\.\s*table_name\s*\(\s*([^)]*)\)", dyn.text):
            if re.sub(r"\s", "", m.group(1)) != "&self.table":
                raise CannotCheck(f"shared/src/storage/dynamo.rs:{dyn.line_of(m.start())}: a table other than "
                                  f"self.table ({m.group(1).strip()}): not modelled")

    def _check_wiring(self):
        deps = strip_rust((self.shared / "deps.rs").read_text(encoding="utf-8"))
        config = (self.shared / "config.rs").read_text(encoding="utf-8")
        for pattern, field, env in WIRING:
            if not re.search(pattern, deps):
                raise CannotCheck(f"shared/src/deps.rs no longer matches {pattern}: update WIRING/PRIMITIVES")
            if field is None:
                continue
            if not re.search(rf"\bsettings\s*\.\s*{field}\b", deps):
                raise CannotCheck(f"shared/src/deps.rs no longer uses settings.{field}: update WIRING")
            if not re.search(rf"\b{field}\b[^\n]*\"{env}\"|\"{env}\"[^\n]*\n?[^\n]*\b{field}\b", config):
                raise CannotCheck(f"shared/src/config.rs: settings.{field} is not read from {env}")

    def _store_traits(self):
        text = strip_rust((self.shared / "storage" / "mod.rs").read_text(encoding="utf-8"))
        m = re.search(r"pub\s+struct\s+Stores\s*\{", text)
        if not m:
            raise CannotCheck("shared/src/storage/mod.rs: no `pub struct Stores`")
        body = text[m.end() : match_brace(text, m.end() - 1)]
        fields = dict(re.findall(rf"pub\s+({IDENT})\s*:\s*Arc\s*<\s*dyn\s+({IDENT})\s*>", body))
        if not fields:
            raise CannotCheck("shared/src/storage/mod.rs: no store fields found in Stores")
        return fields

    def _primitive_actions(self):
        out = {}
        for prim, (rel, header, name, env) in PRIMITIVES.items():
            sdk = self.sdk[rel]
            fn = sdk.rf.find(header, name)
            if fn is None:
                raise CannotCheck(f"PRIMITIVES[{prim!r}]: no fn {name} in `impl {header}` of shared/src/{rel}")
            acts = sdk.actions(fn)
            if not acts:
                raise CannotCheck(f"PRIMITIVES[{prim!r}]: {header}::{name} makes no SDK call any more")
            out[prim] = ({a: f"{prim} -> {why}" for a, why in acts.items()}, env)
        return out

    def _notify_actions(self):
        acts = {}
        for rel in SDK_FILES:
            if not rel.startswith("notifier/"):
                continue
            sdk = self.sdk[rel]
            for fn in sdk.rf.fns:
                if fn.trait == "Notifier" and fn.name == "dispatch":
                    for a, why in sdk.actions(fn).items():
                        acts.setdefault(a, f"notifier send -> {why}")
        if not acts:
            raise CannotCheck("no `impl Notifier` with SDK calls found under shared/src/notifier")
        return acts

    def _service_modules(self):
        text = strip_rust((self.shared / "service" / "mod.rs").read_text(encoding="utf-8"))
        mods = re.findall(rf"\bpub\s+mod\s+({IDENT})\s*;", text)
        for m in mods:
            if not (self.shared / "service" / f"{m}.rs").exists():
                raise CannotCheck(f"service module {m} is not shared/src/service/{m}.rs")
        return mods

    def _check_outside_services(self):
        for path in sorted(self.shared.rglob("*.rs")):
            rel = path.relative_to(self.shared).as_posix()
            if rel.startswith("service/"):
                continue
            text = strip_rust(path.read_text(encoding="utf-8"))
            m = re.search(r"\bdeps\s*\.\s*(stores|mac|sealer|signer|notifiers|outbox)\b", text)
            if m:
                raise CannotCheck(f"shared/src/{rel} uses deps.{m.group(1)} outside the service modules: "
                                  "not modelled (extend check_iam.py)")

    def dynamo_store_actions(self, field: str, method: str, where: str):
        """({action: why}, table env) of a store method."""
        trait = self.store_traits.get(field)
        if trait is None:
            raise CannotCheck(f"{where}: deps.stores.{field} is not a field of Stores")
        sdk = self.sdk["storage/dynamo.rs"]
        fn = sdk.rf.find(f"{trait} for DynamoStore", method)
        if fn is None:
            raise CannotCheck(f"{where}: no {method} in `impl {trait} for DynamoStore`")
        return sdk.actions(fn), self.table_env_of(sdk, fn)

    def table_env_of(self, sdk: SdkFile, fn: RustFn) -> str:
        """The table a DynamoStore method works on: the audit table when its body goes through
        `self.for_audit()` (and nothing else), otherwise the main table."""
        if not re.search(rf"\b{AUDIT_RECEIVER}\s*\(", fn.body):
            return TABLE_ENV
        plain = [m.group(1) for m in re.finditer(rf"\bself\s*\.\s*({IDENT})\s*\(", fn.body)
                 if m.group(1) != AUDIT_RECEIVER]
        if plain or sdk.direct(fn):
            raise CannotCheck(f"shared/src/storage/dynamo.rs:{fn.line}: {fn.label} mixes the audit table "
                              f"({AUDIT_RECEIVER}) with the main table (self.{', self.'.join(plain) or 'client'}): "
                              "not modelled")
        return AUDIT_TABLE_ENV

    def _outbox_dispatch(self):
        """(the queueing fn, {variant: a copy of it whose fallback is the arm of the delivering
        fn for that variant}); see OUTBOX_DISPATCH."""
        d = OUTBOX_DISPATCH
        where = f"shared/src/service/{d['module']}.rs"
        rf = self.files.get(d["module"])
        queue_fn = rf and rf.find(None, d["queue_fn"])
        deliver_fn = rf and rf.find(None, d["deliver_fn"])
        if not queue_fn or not deliver_fn:
            raise CannotCheck(f"OUTBOX_DISPATCH: no fn {d['queue_fn']} and fn {d['deliver_fn']} in {where}")
        fallback = list(re.finditer(rf"(?<![\w.:]){d['deliver_fn']}\s*\(", queue_fn.body))
        if len(fallback) != 1 or not re.search(r"\bdeps\s*\.\s*outbox\s*\.\s*enqueue\s*\(", queue_fn.body):
            raise CannotCheck(f"OUTBOX_DISPATCH: {where} {d['queue_fn']} no longer queues through "
                              f"deps.outbox.enqueue with one {d['deliver_fn']}(..) fallback")
        enum_text = strip_rust((self.shared / d["enum_file"]).read_text(encoding="utf-8"))
        variants = enum_variants(enum_text, d["enum"], f"shared/src/{d['enum_file']}")
        arms = match_arms(deliver_fn.body, d["enum"], f"{where} {d['deliver_fn']}")
        if sorted(arms) != sorted(variants):
            raise CannotCheck(f"OUTBOX_DISPATCH: the arms of {d['deliver_fn']} ({', '.join(sorted(arms))}) "
                              f"are not the variants of {d['enum']} ({', '.join(sorted(variants))})")
        out = {}
        body = queue_fn.body
        for variant, arm in arms.items():
            # The fallback call becomes a call of nothing, followed by the arm's body.
            text = (body[: fallback[0].start()] + "drop(" + body[fallback[0].end():].rstrip()[:-1]
                    + "\n{\n" + arm + "\n}\n}")
            out[variant] = RustFn(queue_fn.module, f"{queue_fn.name}[{d['enum']}::{variant}]", None, None,
                                  False, text, queue_fn.line)
        return queue_fn, out

    def _dispatched(self, callee: RustFn, body: str, pos: int) -> RustFn:
        """The callee, or for `enqueue(deps, Outgoing::V {..})` its copy for V."""
        if callee is not self.enqueue_fn:
            return callee
        args = call_args(body, pos)
        if args is None or len(args) != 2:
            return callee
        m = re.match(rf"(?:(?:crate|portcullis)\s*::\s*{re.escape(OUTBOX_DISPATCH['enum_file'][:-3])}\s*::\s*)?"
                     rf"{OUTBOX_DISPATCH['enum']}\s*::\s*({IDENT})\b", args[1])
        return self.variant_fns.get(m.group(1), callee) if m else callee

    # -- the call graph --

    def scopes(self, rf: RustFile):
        """Module aliases and item aliases a file's `use` items bring in."""
        mods, items = {}, {}
        for path, alias in rf.uses():
            p = list(path)
            if p and p[0] == "super" and rf.module in self.service_modules:
                p = ["crate", "service"] + p[1:]
            if len(p) < 3 or p[0] not in ("crate", "portcullis") or p[1] != "service":
                continue
            rest = p[2:]
            if rest[0] not in self.service_modules:
                continue
            if len(rest) == 1 or rest[1] == "self":
                mods[alias or rest[0]] = rest[0]
            elif rest[1] != "*":
                items[alias or rest[1]] = (rest[0], rest[1])
        return mods, items

    def all_fns(self, module):
        return self.files[module].fns

    def resolve(self, rf: RustFile, fn: RustFn, mods, items):
        """The functions `fn` calls, as (RustFn, how)."""
        out = []
        body = fn.body
        modset = set(self.service_modules)

        def free(module, name):
            return [f for f in self.all_fns(module) if f.name == name and f.impl_type is None]

        def methods(module, typ, name):
            return [f for f in self.all_fns(module) if f.name == name and f.impl_type == typ]

        for m in re.finditer(rf"\b((?:{IDENT}\s*::\s*)+)({IDENT})\b", body):
            segs = re.findall(IDENT, m.group(1)) + [m.group(2)]
            if segs[0] == "self" and rf.module in modset:
                segs = [rf.module] + segs[1:]
            while segs and segs[0] in ("crate", "portcullis", "super"):
                segs = segs[1:]
            if segs and segs[0] == "service":
                segs = segs[1:]
            if len(segs) < 2:
                continue
            head, rest = segs[0], segs[1:]
            module = mods.get(head) or (head if head in modset else None)
            if module:
                if len(rest) == 1:
                    out += [(self._dispatched(f, body, m.end()), "call") for f in free(module, rest[0])]
                elif len(rest) == 2:
                    out += [(f, "call") for f in methods(module, rest[0], rest[1])]
            elif head in items and len(rest) == 1:
                out += [(f, "call") for f in methods(items[head][0], items[head][1], rest[0])]
            elif head == "Self" and fn.impl_type and len(rest) == 1:
                out += [(f, "call") for f in self._methods_anywhere(rf, fn.impl_type, rest[0])]
            elif len(rest) == 1:
                out += [(f, "call") for f in self._methods_anywhere(rf, head, rest[0])]
        for m in re.finditer(rf"(?<![\w.:])({IDENT})\s*\(", body):
            name = m.group(1)
            if re.search(r"\bfn\s*$", body[: m.start()]):
                continue
            local = [f for f in rf.fns if f.name == name and f.impl_type is None]
            if local:
                out += [(self._dispatched(f, body, m.end() - 1), "call") for f in local]
            elif name in items:
                out += [(self._dispatched(f, body, m.end() - 1), "call") for f in free(*items[name])]
        for m in re.finditer(rf"\.\s*({IDENT})\s*(?:::\s*<[^()]*>\s*)?\(", body):
            name = m.group(1)
            for module in list(self.files):
                out += [(f, "method") for f in self.all_fns(module) if f.name == name and f.has_self]
        return [(f, how) for f, how in out if f is not fn]

    def _methods_anywhere(self, rf, typ, name):
        found = [f for f in rf.fns if f.name == name and f.impl_type == typ]
        for module in self.files:
            found += [f for f in self.all_fns(module) if f.name == name and f.impl_type == typ]
        return found

    def primitives(self, rf: RustFile, fn: RustFn):
        """AWS primitives used directly in fn's body: {action: why}, resource env per action."""
        body, where = fn.body, f"{rf.rel}:{fn.line} ({fn.label})"
        found: dict[tuple[str, str | None], str] = {}

        def add(acts, env):
            for a, why in acts.items():
                found.setdefault((a, env), why)

        for m in re.finditer(rf"\bdeps\s*\.\s*({IDENT})", body):
            if m.group(1) not in DEPS_FIELDS:
                raise CannotCheck(f"{where}: deps.{m.group(1)} is not in check_iam.py's DEPS_FIELDS")
        for m in re.finditer(rf"\b({IDENT})\s*\.\s*(stores|sealer|signer|notifiers|outbox)\s*\.", body):
            if m.group(1) != "deps":
                raise CannotCheck(f"{where}: {m.group(1)}.{m.group(2)} (only deps.{m.group(2)} is followed)")
        for m in re.finditer(rf"\b({IDENT})\s*\.\s*mac\s*\.\s*mac\s*\(", body):
            if m.group(1) != "deps":
                raise CannotCheck(f"{where}: {m.group(1)}.mac.mac (only deps.mac is followed)")
        if re.search(rf"\b(?!deps\b)({IDENT})\s*=\s*&?\s*deps\s*(?:\.\s*clone\s*\(\s*\))?\s*;", body):
            raise CannotCheck(f"{where}: deps is rebound to another name; calls through it would be missed")
        stores = re.findall(r"\bdeps\s*\.\s*stores\b", body)
        calls = list(re.finditer(rf"\bdeps\s*\.\s*stores\s*\.\s*({IDENT})\s*\.\s*({IDENT})\s*\(", body))
        if len(stores) != len(calls):
            raise CannotCheck(f"{where}: deps.stores used other than as deps.stores.<store>.<method>(..)")
        for m in calls:
            acts, env = self.dynamo_store_actions(m.group(1), m.group(2), where)
            add({a: f"deps.stores.{m.group(1)}.{m.group(2)} -> {w}" for a, w in acts.items()}, env)
        # Signing (get) may open the envelope key; verifying (ring, ring_knowing) only reads keys.
        verify_prims = ["deps.signer.get", "signer (envelope): key record"]
        for field, pattern, prims in (
            ("mac", r"\bdeps\s*\.\s*mac\s*\.\s*mac\s*\(", ["deps.mac.mac"]),
            ("signer", r"\bdeps\s*\.\s*signer\s*\.\s*get\s*\(",
             verify_prims + ["signer (envelope): open the key"]),
            ("signer", r"\bdeps\s*\.\s*signer\s*\.\s*(?:ring|ring_knowing)\s*\(", verify_prims),
            ("code_keys", r"\bdeps\s*\.\s*code_keys\s*\.\s*(?:mac|mac_as)\s*\(",
             ["deps.mac.mac", "code keys (envelope): key record", "code keys (envelope): open the key"]),
        ):
            uses = re.findall(rf"\bdeps\s*\.\s*{field}\b", body)
            good = re.findall(pattern, body)
            modelled = re.findall(rf"\bdeps\s*\.\s*{field}\s*\.\s*(?:get|ring|ring_knowing|mac|mac_as)\s*\(", body)
            if len(uses) != len(modelled):
                raise CannotCheck(f"{where}: deps.{field} used other than as modelled")
            if good:
                for p in prims:
                    add(*self.prim_actions[p])
        sealer_uses = re.findall(r"\bdeps\s*\.\s*sealer\b", body)
        sealer_calls = re.findall(r"\bdeps\s*\.\s*sealer\s*\.\s*(seal|open)\s*\(", body)
        if len(sealer_uses) != len(sealer_calls):
            raise CannotCheck(f"{where}: deps.sealer used other than as .seal(..)/.open(..)")
        for op in sealer_calls:
            add(*self.prim_actions[f"deps.sealer.{op}"])
        outbox_uses = re.findall(r"\bdeps\s*\.\s*outbox\b", body)
        outbox_calls = re.findall(rf"\bdeps\s*\.\s*outbox\s*\.\s*({IDENT})\s*\(", body)
        if len(outbox_uses) != len(outbox_calls):
            raise CannotCheck(f"{where}: deps.outbox used other than as deps.outbox.<method>(..)")
        for op in outbox_calls:
            if f"deps.outbox.{op}" not in self.prim_actions:
                raise CannotCheck(f"{where}: deps.outbox.{op}(..) is not modelled (PRIMITIVES binds "
                                  "only deps.outbox.enqueue)")
            add(*self.prim_actions[f"deps.outbox.{op}"])
        if re.search(r"\bjwt\s*::\s*issue\s*\(", body) or re.search(r"\.\s*sign\s*\(", body):
            add(*self.prim_actions["jwt::issue"])
        if re.search(r"\bdeps\s*\.\s*notifiers\b", body) or re.search(r"\.\s*dispatch\s*\(", body):
            add(self.notify_actions, None)
        return found

    def function_needs(self, crate_dir: Path):
        """{(action, env or None): why} for one function crate."""
        name = crate_dir.name
        files = [RustFile(p, f"fn:{name}/{p.stem}", p.relative_to(self.root).as_posix())
                 for p in sorted((crate_dir / "src").rglob("*.rs"))]
        file_of = {id(f): rf for rf in files + list(self.files.values()) for f in rf.fns}
        file_of.update({id(f): self.files[f.module] for f in self.variant_fns.values()})
        main = "\n".join(f.text for f in files)
        if not re.search(r"\bedge\s*::\s*serve\s*\(|\bDeps\s*::\s*from_env\s*\(", main):
            raise CannotCheck(f"functions/{name}: main builds Deps neither by edge::serve nor Deps::from_env")
        needs = {}
        acts, env = self.prim_actions["cold start (Deps::from_env)"]
        for a, why in acts.items():
            needs[(a, env)] = why
        seen: set[int] = set()
        queue = deque()
        for rf in files:
            for fn in rf.fns:
                queue.append((rf, fn, fn.label))
        # The edge's access checks (shared/src/edge/route.rs `dispatch`) run before the
        # handlers: a session, elevated or admin route is authenticated, an admin route's caller
        # is checked as an admin, a `checking_client()` one has its browser checked. The edge is
        # not a service module, so its calls are added here.
        edge_calls = []
        if re.search(r"\bRoute\s*::\s*(session|elevated|admin)\s*\(", main):
            edge_calls.append(("tokens", "authenticate"))
        if re.search(r"\bRoute\s*::\s*admin\s*\(", main):
            edge_calls.append(("admin", "require_admin"))
        if re.search(r"\.\s*checking_client\s*\(", main):
            edge_calls.append(("sign_in", "check_client"))
        edge_text = (self.shared / "edge" / "route.rs").read_text()
        for module, name in (("tokens", "authenticate"), ("admin", "require_admin"),
                             ("sign_in", "check_client")):
            if not re.search(rf"\b{module}\s*::\s*{name}\s*\(", edge_text):
                raise CannotCheck(f"shared/src/edge/route.rs no longer calls {module}::{name}: "
                                  "update the edge's access checks in check_iam.py")
        for module, name in edge_calls:
            callee = self.files[module].find(None, name)
            if callee is None:
                raise CannotCheck(f"the edge calls {module}::{name}, which check_iam.py cannot find")
            queue.append((self.files[module], callee, f"edge::dispatch -> {callee.label}"))
        reached_modules: set[str] = set()
        while queue:
            rf, fn, chain = queue.popleft()
            if id(fn) in seen:
                continue
            seen.add(id(fn))
            for key, why in self.primitives(rf, fn).items():
                needs.setdefault(key, f"{chain} -> {why}")
            mods, items = self.scopes(rf)
            for callee, _how in self.resolve(rf, fn, mods, items):
                crf = file_of[id(callee)]
                if callee.module in self.files:
                    reached_modules.add(callee.module)
                queue.append((crf, callee, f"{chain} -> {callee.label}"))
        for rf in files:
            self.check_imports(rf)
        return needs, sorted(reached_modules)

    def check_imports(self, rf: RustFile):
        """Self-check of the call graph: every service module a file imports as a module must be
        found called from that file; otherwise the parser missed a form of call."""
        mods, items = self.scopes(rf)
        called = {callee.module for fn in rf.fns for callee, _ in self.resolve(rf, fn, mods, items)}
        for alias, module in mods.items():
            if module not in called and module != rf.module:
                self.gaps.append(f"{rf.rel} imports service::{module} (as {alias}) but no call into it "
                                 "was found: a gap in check_iam.py's call graph")


# ---- the template side -----------------------------------------------------------------------




def resource_name(value) -> str:
    if value == "*":
        return "*"
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
        if "Ref" in value:
            return value["Ref"]
        if "Fn::Sub" in value:
            sub = value["Fn::Sub"]
            return sub if isinstance(sub, str) else json.dumps(sub)
    return json.dumps(value) if not isinstance(value, str) else value


class Template:
    def __init__(self, path: Path):
        self.t = cfn_yaml.load(path)
        self.resources = self.t.get("Resources") or {}
        self.global_env = (((self.t.get("Globals") or {}).get("Function") or {})
                           .get("Environment", {}).get("Variables", {})) or {}

    def functions(self):
        out = {}
        for name, res in self.resources.items():
            if res.get("Type") == "AWS::Serverless::Function":
                binary = ((res.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
                out[name] = (binary, res)
        return out

    def key_of(self, logical: str) -> str:
        """A KMS alias resolves to its key; anything else is itself."""
        res = self.resources.get(logical) or {}
        if res.get("Type") == "AWS::KMS::Alias":
            return resource_name(res["Properties"]["TargetKeyId"])
        return logical

    def env_resource(self, fn_res, env: str) -> str:
        local = ((fn_res.get("Properties") or {}).get("Environment") or {}).get("Variables") or {}
        value = local.get(env, self.global_env.get(env))
        if value is None:
            raise CannotCheck(f"the template gives the functions no {env}")
        if env in QUEUE_URL_ENVS:
            # `!Ref` of a queue is its URL; the need is on the queue itself (its ARN, below).
            queue = value.get("Ref") if isinstance(value, dict) and len(value) == 1 else None
            if not self.is_queue(queue):
                raise CannotCheck(f"{env} is {json.dumps(value)}, not !Ref of an AWS::SQS::Queue of the template")
            return queue
        return self.key_of(resource_name(value))

    def is_queue(self, logical) -> bool:
        return isinstance(logical, str) and (self.resources.get(logical) or {}).get("Type") == "AWS::SQS::Queue"

    def grant_resource(self, value) -> str:
        """resource_name, except that a queue is only named by its ARN: a grant on `!Ref` of a
        queue (its URL) or on another of its attributes covers nothing."""
        name = resource_name(value)
        if isinstance(value, dict) and self.is_queue(name):
            attr = value["Fn::GetAtt"][1] if "Fn::GetAtt" in value else None
            if attr != "Arn":
                how = f"!GetAtt {name}.{attr}" if attr else f"!Ref {name}"
                return f"{how} (not the queue's ARN)"
        return name

    def events(self, fn_name, fn_res):
        """[(event name, type, note)]; a guard on event types that may add to the role."""
        out = []
        for ev_name, ev in ((fn_res.get("Properties") or {}).get("Events") or {}).items():
            kind = (ev or {}).get("Type")
            if kind in PLAIN_EVENTS:
                continue
            if kind not in SAM_POLLER_EVENTS:
                raise CannotCheck(f"{fn_name}: event {ev_name} of type {kind} is not modelled (does SAM add "
                                  "permissions to the role for it? add it to PLAIN_EVENTS or SAM_POLLER_EVENTS)")
            source = resource_name(((ev.get("Properties") or {}).get("Queue")))
            out.append((ev_name, kind, f"{kind} on {source}: the poller's permissions are SAM's "
                        f"({SAM_POLLER_EVENTS[kind]}, outside Policies), not the code's; not checked"))
        return out

    def table_key(self, table: str) -> str | None:
        sse = ((self.resources.get(table) or {}).get("Properties") or {}).get("SSESpecification") or {}
        if not sse.get("SSEEnabled") or sse.get("SSEType") != "KMS" or "KMSMasterKeyId" not in sse:
            return None
        return self.key_of(resource_name(sse["KMSMasterKeyId"]))

    def grants(self, fn_name, fn_res):
        """[(action, resource, via)]: via is "dynamodb" for a kms:ViaService dynamodb condition."""
        out = []
        for policy in (fn_res.get("Properties") or {}).get("Policies") or []:
            if not isinstance(policy, dict) or set(policy) - {"Version", "Statement"}:
                raise CannotCheck(f"{fn_name}: policy {json.dumps(policy)[:80]} is not an inline "
                                  "statement list (managed policies and SAM policy templates are not checked)")
            for st in policy.get("Statement") or []:
                if st.get("Effect") != "Allow" or "NotAction" in st or "NotResource" in st:
                    raise CannotCheck(f"{fn_name}: only Allow statements with Action/Resource are checked")
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                via = None
                cond = st.get("Condition")
                if cond:
                    equals = (cond.get("StringEquals") or {}) if len(cond) == 1 else {}
                    vs = equals.get("kms:ViaService")
                    vs = resource_name(vs) if vs is not None else ""
                    purpose = equals.get("kms:EncryptionContext:purpose") if len(equals) == 1 else None
                    if re.fullmatch(r"dynamodb\.\$\{AWS::Region\}\.amazonaws\.com", vs):
                        via = "dynamodb"
                    elif isinstance(purpose, str):
                        via = f"purpose={purpose}"
                    else:
                        via = "condition " + json.dumps(cond)
                for a in actions:
                    for r in resources:
                        out.append((a, self.grant_resource(r), via))
        return out


# ---- comparison and report -------------------------------------------------------------------


def compare(fn_name, needs, grants, template, fn_res):
    """(missing, extra, allowed, ok) lists of (action, resource, via, note)."""
    needed = {}
    for (action, env), why in needs.items():
        env, _, context = (env or "").partition("|")
        env = env or None
        if action in NOTIFY_RESOURCES:
            res = NOTIFY_RESOURCES[action]
        elif action.startswith("ses:"):
            res = None  # the sender identity: any resource naming it is accepted
        else:
            res = template.env_resource(fn_res, env) if env else None
        needed.setdefault((action, res, context or None), why)
    table_keys = set()
    for table in sorted({r for a, r, _ in needed if a.startswith("dynamodb:")}):
        key = template.table_key(table)
        if key:
            table_keys.add(key)
            needed.setdefault(("kms:Decrypt", key, "dynamodb"),
                              f"the table {table} is encrypted with {key} (DynamoDB decrypts on the caller's behalf)")

    def covers(grant, need):
        ga, gr, gv = grant
        na, nr, nv = need
        if not fnmatchcase(na, ga):
            return False
        if nr is not None and gr != nr and gr != "*":
            return False
        return gv is None or gv == nv

    missing, extra, allowed, ok = [], [], [], []
    for need, why in sorted(needed.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        (ok if any(covers(g, need) for g in grants) else missing).append((*need, why))
    for g in grants:
        ga, gr, gv = g
        if any(covers(g, n) for n in needed) and "*" not in ga:
            if gr == "*" and not any(fnmatchcase(n[0], ga) and n[1] in ("*", None) for n in needed):
                wanted = sorted({str(n[1]) for n in needed if fnmatchcase(n[0], ga)})
                extra.append((ga, gr, gv, f"wildcard resource; the code needs it only on {', '.join(wanted)}"))
            continue
        if gv == "dynamodb" and gr in table_keys and ga in TABLE_KEY_EXTRAS:
            allowed.append((ga, gr, gv, "table encryption, only through DynamoDB"))
            continue
        note = "wildcard action" if "*" in ga else "granted, never used by the code"
        extra.append((ga, gr, gv, note))
    return missing, extra, allowed, ok


def fmt(action, res, via):
    on = "any resource" if res is None else res
    return f"{action} on {on}" + (" (via dynamodb)" if via == "dynamodb" else f" ({via})" if via else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--template", default=None, help="default: <root>/infra/template.yaml")
    ap.add_argument("-v", "--verbose", action="store_true", help="show why every action is needed")
    args = ap.parse_args(argv)
    root = Path(args.root)
    template_path = Path(args.template) if args.template else root / "infra" / "template.yaml"

    try:
        analysis = Analysis(root)
        template = Template(template_path)
        crates = {}
        for manifest in sorted((root / "functions").glob("*/Cargo.toml")):
            text = manifest.read_text(encoding="utf-8")
            m = re.search(r"\[\[bin\]\][^\[]*?\bname\s*=\s*\"([^\"]+)\"", text)
            crates[m.group(1) if m else manifest.parent.name] = manifest.parent
        tfns = template.functions()
        by_binary = {b: n for n, (b, _) in tfns.items()}
        problems = [f"template function {n} has no Metadata.BuildProperties.Binary" for n, (b, _) in tfns.items() if not b]
        problems += [f"functions/{d.name} (binary {b}) has no function in the template"
                     for b, d in crates.items() if b not in by_binary]
        problems += [f"template function {n} builds binary {b}, which no crate under functions/ provides"
                     for n, (b, _) in tfns.items() if b and b not in crates]
        if problems:
            raise CannotCheck("; ".join(problems))
        results = []
        for binary, crate in crates.items():
            fn_name = by_binary[binary]
            fn_res = tfns[fn_name][1]
            needs, modules = analysis.function_needs(crate)
            grants = template.grants(fn_name, fn_res)
            events = template.events(fn_name, fn_res)
            results.append((fn_name, crate, binary, modules, events,
                            compare(fn_name, needs, grants, template, fn_res)))
        if analysis.gaps:
            raise CannotCheck("\n  ".join(sorted(set(analysis.gaps))))
    except CannotCheck as err:
        print(f"check_iam: cannot check: {err}", file=sys.stderr)
        return 2

    shown = template_path.resolve()
    if shown.is_relative_to(root.resolve()):
        shown = shown.relative_to(root.resolve())
    print(f"IAM least privilege: {shown} against the Rust sources ({len(results)} functions)")
    print("  + used by the code, not granted     - granted, never used     ~ allowed extra\n")
    failed = 0
    for fn_name, crate, binary, modules, events, (missing, extra, allowed, ok) in results:
        status = "OK" if not missing and not extra else "MISMATCH"
        failed += status != "OK"
        print(f"{fn_name} (functions/{crate.name}, binary {binary}): {status}")
        print(f"  service modules reached: {', '.join(modules) or '-'}")
        for ev_name, _kind, note in events:
            print(f"  event {ev_name}: {note}")
        for a, r, v, why in missing:
            print(f"  + {fmt(a, r, v)}")
            print(f"      why: {why}")
        for a, r, v, note in extra:
            print(f"  - {fmt(a, r, v)}   [{note}]")
        for a, r, v, note in allowed:
            print(f"  ~ {fmt(a, r, v)}   [{note}]")
        if args.verbose:
            for a, r, v, why in ok:
                print(f"    {fmt(a, r, v)}")
                print(f"      why: {why}")
        else:
            print(f"    granted and used: {', '.join(sorted({a for a, _, _, _ in ok}))}")
        print()
    if failed:
        print(f"check_iam: {failed} of {len(results)} functions do not match their code "
              "(fix the Policies in the template, or the code)")
        return 1
    print("check_iam: every function is granted exactly what its code uses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
