"""Continue the finished XY_A store (8 epochs) to more epochs: resumes from the last epoch
checkpoint with the same config except ``epochs`` (deterministic, so this equals an
uninterrupted run of that many epochs)."""
import sys
from studies.config import load_config
from studies.oscillate import run_oscillators
raw = load_config("bench/explore/oscillators/xy_A.toml").to_dict()
raw["xy_learning"]["epochs"] = int(sys.argv[1])
s = run_oscillators(load_config(raw), "XY_A.zarr", resume=True, progress=False)
print("\n".join(s.lines()))
