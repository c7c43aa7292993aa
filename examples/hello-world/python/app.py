"""pythonapp: sends a new order to nodeapp once a second, through its own Courier sidecar.

Standard library only. Courier gives it DAPR_HTTP_PORT; 3500 when run by hand.
"""
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request

dapr_port = os.getenv("DAPR_HTTP_PORT", "3500")
url = f"http://localhost:{dapr_port}/v1.0/invoke/nodeapp/method/neworder"
limit = int(os.getenv("ORDER_LIMIT", "0"))  # 0: send orders until stopped

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

n = 0
while limit == 0 or n < limit:
    n += 1
    body = json.dumps({"data": {"orderId": n}}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            print(f"Sent order {n}: HTTP {response.status}", flush=True)
    except urllib.error.HTTPError as err:
        print(f"HTTP {err.code} => {err.read().decode(errors='replace')}", flush=True)
    except (urllib.error.URLError, OSError) as err:
        print(f"order {n} failed: {err}", flush=True)
    time.sleep(1)
