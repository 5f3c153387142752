"""Check calibrate.severity_levels against the product's _severity_kernel (source read from
/work/main/inference/insights.py, executed as plain Python; nothing in /work/main is modified)."""
import ast

import calibrate as C
import numpy as np

src = open("/work/main/inference/insights.py").read()
fn = next(n for n in ast.parse(src).body if isinstance(n, ast.FunctionDef) and n.name == "_severity_kernel")
fn.decorator_list = []
ns = {"np": np}
exec(compile(ast.Module([fn], []), "insights_kernel", "exec"), ns)
rng = np.random.default_rng(0)
bad = 0
for trial in range(300):
    n = 200
    sc = np.abs(rng.standard_normal(n)).cumsum() % 3.0 * rng.uniform(0.3, 1.5)
    g = rng.random(n) < 0.05
    thr, wr, cr, h = rng.uniform(0.5, 2), rng.uniform(0.5, 0.95), rng.uniform(0.6, 1.0), int(rng.integers(1, 4))
    state = np.zeros((4, 1), dtype=np.int64); state[2] = 2
    out = np.empty(n, dtype=np.int64)
    ns["_severity_kernel"](np.zeros(n, dtype=np.int64), sc, g, thr, wr, cr, h, state, out)
    bad += int((out != C.severity_levels(sc, thr, wr, cr, h, g)).sum())
print("mismatching windows over 300 random sequences:", bad)
