"""The BINGREL excerpt the main job ships (data/bingrel-main/): the files of the main job's six
relations (examples/main.toml: P36, P159, P176, P178, P279, P407) with every bag trimmed to its
first 4 head+tail and first 4 head-only sentences, gzip-compressed (about 1.9 MB). The main job
runs `kn activations --sentences-per-fact 4`, which reads exactly those sentences of each fact
(T1, T2, as a full-corpus run with that option; the random T3 sentences come from this smaller
pool). MIT licence of the corpus kept.

Run:  python3 scripts/data/make_main_corpus.py [BINGREL_DIR]   (default ../shared/data/bingrel)
Deterministic: gzip without a timestamp, so reruns reproduce the files byte for byte.
"""
import gzip
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RELATIONS = ["P36", "P159", "P176", "P178", "P279", "P407"]
SENTENCES = 4
OUT = ROOT / "data" / "bingrel-main"


def main():
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "bingrel"
    OUT.mkdir(parents=True, exist_ok=True)
    for relation in RELATIONS:
        name = f"final_distant_allbags_{relation}_new.json"
        bags = json.loads((source / name).read_text(encoding="utf-8"))
        trimmed = [{"th_bags": b["th_bags"][:SENTENCES], "h_bags": b["h_bags"][:SENTENCES]} for b in bags]
        data = json.dumps(trimmed, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        (OUT / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    shutil.copy(source / "LICENSE", OUT / "LICENSE")
    total = sum(p.stat().st_size for p in OUT.glob("*.gz"))
    print(f"wrote {OUT.relative_to(ROOT)}: {len(RELATIONS)} relations, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
