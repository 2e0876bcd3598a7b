"""Closed-loop load generator for nmt-serve where `wrk` is not installed (needs aiohttp).

CLIENTS clients each POST /v1/translate with one sentence of TEXT_FILE (beam 5) and send the
next as soon as the answer is in, for SECONDS; prints one JSON line: requests/s, p50/p99
latency, answers by status.

    python3 bench/serve/load.py http://127.0.0.1:8080/v1/translate 32 15 ../shared/data/multi30k/test.de
"""
import asyncio, json, sys, time
import aiohttp

async def main(url, conc, dur, path):
    lines = [l.strip() for l in open(path) if l.strip()][:500]
    lat, codes = [], {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as s:
        # warm-up
        for i in range(4):
            async with s.post(url, json={"text": lines[i], "beam_size": 5}) as r:
                await r.read()
        stop = time.perf_counter() + dur
        async def worker(i):
            j = i
            while time.perf_counter() < stop:
                t = time.perf_counter()
                async with s.post(url, json={"text": lines[j % len(lines)], "beam_size": 5}) as r:
                    await r.read()
                    codes[r.status] = codes.get(r.status, 0) + 1
                lat.append(time.perf_counter() - t)
                j += conc
        t0 = time.perf_counter()
        await asyncio.gather(*[worker(i) for i in range(conc)])
        el = time.perf_counter() - t0
    lat.sort()
    q = lambda p: round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 1)
    print(json.dumps({"clients": conc, "seconds": round(el, 1), "requests": len(lat),
                      "req_per_s": round(len(lat) / el, 1), "p50_ms": q(0.5), "p99_ms": q(0.99), "codes": codes}))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]))
