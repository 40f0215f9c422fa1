"""A webhook receiver for the notification tests: every POST is checked with the
`standardwebhooks` library (an implementation independent of countersign's) and recorded
as one JSON line in LOG: {"ok", "answer", "id", "type", "at", "body", "headers"}
(`answer`: the status it answered with, null while it hangs).

Usage: receiver.py PORT LOG SECRET MODE_FILE

SECRET is the `whsec_...` key, or `none` to accept unsigned bodies (a Slack sink).
MODE_FILE, read at each POST, says how to answer: `ok` (204), `429 N` (429 with
`Retry-After: N`, once, then ok), `hang` (never answer within the sender's timeout),
`500` (500 every time).
"""

import http.server
import json
import sys
import threading
import time

from standardwebhooks import Webhook

PORT, LOG, SECRET, MODE_FILE = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
hook = None if SECRET == "none" else Webhook(SECRET)
lock = threading.Lock()
said_429 = set()


def mode():
    try:
        with open(MODE_FILE) as f:
            return f.read().strip() or "ok"
    except OSError:
        return "ok"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        ok, kind, event_id = True, None, headers.get("webhook-id")
        try:
            if hook is not None:
                payload = hook.verify(body, headers)
            else:
                payload = json.loads(body)
            kind = payload.get("type") if isinstance(payload, dict) else None
        except Exception:
            ok = False
        m = mode()
        if not ok:
            answer = 400
        elif m == "hang":
            answer = None
        elif m.startswith("429") and event_id not in said_429:
            answer = 429
        elif m == "500":
            answer = 500
        else:
            answer = 204
        record = {
            "ok": ok,
            "answer": answer,
            "id": event_id,
            "type": kind,
            "at": time.time(),
            "body": body.decode("utf-8", "replace"),
            "headers": headers,
        }
        with lock:
            with open(LOG, "a") as f:
                f.write(json.dumps(record) + "\n")
        if answer is None:
            time.sleep(30)
            return
        self.send_response(answer)
        if answer == 429:
            said_429.add(event_id)
            self.send_header("Retry-After", m.split()[1])
        self.end_headers()


server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("listening", flush=True)
server.serve_forever()
