"""The moto server (`moto_server`'s own command line), handling one request at a time.

moto's threaded server runs requests concurrently, and its DynamoDB TransactWriteItems deep-copies
each table it touches (to roll back) while other threads write to it: under concurrent tests that
fails with `RuntimeError: dictionary changed size during iteration` and an HTTP 500 (seen with
moto 5.2.1). Real DynamoDB has no such race. moto is bound by Python's GIL anyway (~250-300
requests/s however many clients), so serialising requests costs little: connections are still
accepted on threads (keep-alive clients do not block each other); only the handling is one at a
time.

    .venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p 4566
"""

import threading

import moto.server as server

_LOCK = threading.Lock()
_run_simple = server.run_simple


def _serialised(app):
    def handle(environ, start_response):
        with _LOCK:
            # Consume the response inside the lock: the body is produced while iterating.
            return list(app(environ, start_response))

    return handle


def run_simple(host, port, app, **kwargs):
    return _run_simple(host, port, _serialised(app), **kwargs)


server.run_simple = run_simple

if __name__ == "__main__":
    server.main()
