"""Allocation-heavy work for the real-program tests: dictionaries, strings, lists, a JSON round
trip and a thread pool whose workers build and drop their own structures. Every result is
folded into one SHA-256 digest, which depends only on the work, never on addresses, timing or
the order in which threads finish."""
import concurrent.futures
import hashlib
import json
import sys


def lcg(seed):
    """The same pseudo-random stream on every run and every allocator."""
    state = seed
    while True:
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        yield state >> 33


def dict_work(digest, rounds):
    rand = lcg(1)
    table = {}
    for i in range(rounds):
        key = "k%08x" % next(rand)
        table[key] = [i, key * (i % 7 + 1), {"n": i, "s": str(i)}]
        if i % 3 == 0 and table:
            # delete an older entry so the dictionary grows and shrinks
            victim = next(iter(table))
            del table[victim]
    for key in sorted(table):
        digest.update(key.encode())
        digest.update(str(len(table[key][1])).encode())
    return len(table)


def string_work(digest, rounds):
    rand = lcg(2)
    pieces = []
    for i in range(rounds):
        word = "".join(chr(97 + (next(rand) % 26)) for _ in range(1 + i % 40))
        pieces.append(word.upper() if i % 5 == 0 else word)
    text = " ".join(pieces)
    words = text.split()
    replaced = text.replace("a", "<A>").replace("e", "[[E]]")
    digest.update(replaced.encode())
    return len(words), len(replaced)


def list_work(digest, rounds):
    rand = lcg(3)
    rows = [[next(rand) % 1000 for _ in range(1 + i % 50)] for i in range(rounds)]
    rows.sort(key=lambda r: (sum(r), len(r)))
    flat = [x for row in rows for x in row]
    chunks = [flat[i:i + 97] for i in range(0, len(flat), 97)]
    total = sum(max(c) - min(c) for c in chunks)
    digest.update(str(total).encode())
    return len(flat)


def json_work(digest, rounds):
    rand = lcg(4)
    records = [
        {
            "id": i,
            "name": "item-%d" % next(rand),
            "tags": ["t%d" % (next(rand) % 100) for _ in range(i % 9)],
            "nested": {"level": [{"x": j, "y": str(j) * 3} for j in range(i % 6)]},
        }
        for i in range(rounds)
    ]
    text = json.dumps(records, sort_keys=True)
    back = json.loads(text)
    again = json.dumps(back, sort_keys=True)
    if again != text:
        raise SystemExit("JSON round trip changed the data")
    digest.update(again.encode())
    return len(text)


def thread_task(index):
    """Work for one pool task: its own structures, built and dropped in the worker thread."""
    rand = lcg(100 + index)
    local = hashlib.sha256()
    for round_ in range(60):
        blob = {("%d-%d" % (round_, n)): bytearray(next(rand) % 2048) for n in range(120)}
        words = ["%x" % next(rand) for _ in range(300)]
        local.update(" ".join(sorted(words)).encode())
        local.update(str(sum(len(b) for b in blob.values())).encode())
        del blob, words
    return index, local.hexdigest()


def pool_work(digest, tasks, threads):
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(thread_task, range(tasks)))
    for index, value in sorted(results):
        digest.update(("%d:%s" % (index, value)).encode())
    return len(results)


def main():
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    digest = hashlib.sha256()
    print("dict entries", dict_work(digest, 60000 * scale))
    print("string words and length", *string_work(digest, 40000 * scale))
    print("list values", list_work(digest, 20000 * scale))
    print("json bytes", json_work(digest, 15000 * scale))
    print("pool tasks", pool_work(digest, 16 * scale, 4))
    print("digest", digest.hexdigest())


if __name__ == "__main__":
    main()
