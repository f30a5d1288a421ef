"""The million-rows recipe in Python `websockets`, as the baseline of
bench/rows/run: the same source table, batches of N rows as JSON, one
commit per batch with the resume position, cumulative acks and a window of
unacknowledged batches, resume by primary key after a reconnect.

  python_rows.py serve SOURCE_DB BATCH WINDOW      prints "listening HOST:PORT",
                                                   then serves until stdin closes
                                                   and prints "peak_rss_kib N"
  python_rows.py receive URL TARGET_DB WINDOW      receives everything, prints
                                                   "rows N seconds S peak_rss_kib K"
"""

import asyncio
import json
import resource
import sqlite3
import sys
import time

import websockets

COLUMNS = "id, ts, device, temperature, humidity, pressure, battery, status"


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def serve(source: str, batch: int, window: int) -> None:
    async def handler(ws):
        hello = json.loads(await ws.recv())
        after, seq = hello["after"], hello["next_seq"]
        db = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        unacked = asyncio.Semaphore(window)
        acked = seq - 1

        async def read_acks():
            nonlocal acked
            async for msg in ws:
                ack = json.loads(msg)["ack"]
                for _ in range(ack - acked):
                    unacked.release()
                acked = ack

        reader = asyncio.create_task(read_acks())
        try:
            while True:
                rows = db.execute(
                    f"SELECT {COLUMNS} FROM readings WHERE id > ? ORDER BY id LIMIT ?",
                    (after, batch),
                ).fetchall()
                await unacked.acquire()
                if not rows:
                    await ws.send(json.dumps({"end": seq}))
                    break
                after = rows[-1][0]
                await ws.send(json.dumps({"seq": seq, "after": after, "rows": rows}))
                seq += 1
            await reader
        except websockets.ConnectionClosed:
            pass
        finally:
            reader.cancel()
            db.close()

    async with websockets.serve(handler, "127.0.0.1", 0, max_size=None) as server:
        host, port = server.sockets[0].getsockname()[:2]
        print(f"listening {host}:{port}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    print(f"peak_rss_kib {peak_rss_kib()}", flush=True)


async def receive(url: str, target: str, window: int) -> None:
    db = sqlite3.connect(target)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS readings (id INTEGER PRIMARY KEY, ts INTEGER, device INTEGER,"
        " temperature REAL, humidity REAL, pressure REAL, battery REAL, status TEXT)"
    )
    db.execute("CREATE TABLE IF NOT EXISTS position (id INTEGER PRIMARY KEY, next_seq INTEGER, after INTEGER)")
    start = time.perf_counter()
    rows = 0
    while True:
        pos = db.execute("SELECT next_seq, after FROM position WHERE id = 0").fetchone() or (0, 0)
        try:
            async with websockets.connect(url, max_size=None) as ws:
                await ws.send(json.dumps({"next_seq": pos[0], "after": pos[1], "window": window}))
                async for msg in ws:
                    m = json.loads(msg)
                    if "end" in m:
                        await ws.close()
                        print(
                            f"rows {rows} seconds {time.perf_counter() - start:.3f} "
                            f"peak_rss_kib {peak_rss_kib()}",
                            flush=True,
                        )
                        return
                    with db:
                        db.executemany(f"INSERT INTO readings ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", m["rows"])
                        db.execute(
                            "INSERT OR REPLACE INTO position (id, next_seq, after) VALUES (0, ?, ?)",
                            (m["seq"] + 1, m["after"]),
                        )
                    rows += len(m["rows"])
                    await ws.send(json.dumps({"ack": m["seq"]}))
        except (OSError, websockets.ConnectionClosed):
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        asyncio.run(serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    else:
        asyncio.run(receive(sys.argv[2], sys.argv[3], int(sys.argv[4])))
