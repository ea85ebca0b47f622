"""The moto server (`moto_server`'s own command line), with DynamoDB requests one at a time.

moto's threaded server runs requests concurrently, and its DynamoDB does not isolate them: a
conditional write's check and its write are not atomic (two concurrent "only if not used yet"
updates can both succeed — seen: a code accepted twice, six sends past a limit of five), and
TransactWriteItems deep-copies each table it touches (to roll back) while other threads write
to it (`RuntimeError: dictionary changed size during iteration`, an HTTP 500; moto 5.2.1). Real
DynamoDB has none of this, and the product's guarantees rest on those conditions, so the tests
must see them hold. DynamoDB requests are therefore handled one at a time; everything else
(KMS, SNS, SES, and the slow `/moto-api/data.json` read-back) stays concurrent, so a long
read-back does not stall the API. moto is bound by Python's GIL anyway (~250-300 requests/s).

    .venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p 4566
"""

import threading

import moto.server as server

_LOCK = threading.Lock()
_run_simple = server.run_simple


def _serialised(app):
    def handle(environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return app(environ, start_response)
        with _LOCK:
            # Consume the response inside the lock: the body is produced while iterating.
            return list(app(environ, start_response))

    return handle


def run_simple(host, port, app, **kwargs):
    return _run_simple(host, port, _serialised(app), **kwargs)


server.run_simple = run_simple

if __name__ == "__main__":
    server.main()
