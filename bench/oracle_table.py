"""Print the oracle-agreement table (and, with --fd, the finite-difference errors) of the interpreters.

    PYTHONPATH=src python bench/oracle_table.py [--fd]

The cases are those of tests/interpreters/test_oracles.py (float64, small random VGG / ResNet); max
relative deviation := max |ours - oracle| / max |oracle|. --fd adds, per interpreter, the largest
relative error of the second-order parameter gradient of a heatmap penalty against central finite
differences (tests/interpreters/test_second_order.py).
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "interpreters"))
warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")


def main(argv: list[str]) -> None:
    import test_oracles

    start = time.perf_counter()
    print("| interpreter | oracle | max relative deviation |")
    print("|---|---|---|")
    for interp, oracle, thunk in test_oracles.CASES:
        print(f"| {interp} | {oracle} | {thunk():.1e} |")
    if "--fd" in argv:
        import test_second_order

        print("\n| interpreter | options | max relative FD error | worst parameter |")
        print("|---|---|---|---|")
        for name, kwargs in test_second_order.CASES:
            errors = test_second_order.fd_errors(name, kwargs)
            worst = max(errors, key=lambda p: errors[p][2])
            options = ", ".join(f"{k}={v}" for k, v in kwargs.items()) or "defaults"
            print(f"| {name} | {options} | {errors[worst][2]:.1e} | {worst} |")
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
