"""Variable snapshots on a real kernel: what a rollback restores, what it names, and undo."""

from __future__ import annotations

import pytest

from codeflow_magic import rollback
from codeflow_magic.executors.kernel import KernelExecutor

pytestmark = [pytest.mark.kernel, pytest.mark.asyncio(loop_scope="module")]


async def py(executor: KernelExecutor, code: str) -> str:
    result = await executor.execute(code)
    assert result.ok or result.status == "error", result
    return "".join(str(o.get("text", "")) for o in result.outputs if o.get("name") == "stdout")


async def test_rollback_restores_bindings_and_contents_and_names_the_rest(
    executor: KernelExecutor,
) -> None:
    await py(
        executor,
        "import numpy as np, pandas as pd\n"
        "frame = pd.DataFrame({'a': [1, 2, 3]})\n"
        "numbers = [1, [2, 3]]\n"
        "table = {'k': {'v': 1}}\n"
        "arr = np.arange(4)\n"
        "count = 5\n"
        "class Model:\n    pass\n"
        "model = Model()\n",
    )
    begun = await rollback.call(executor, "begin", token="k1", max_bytes=64 * 1024**2)
    assert begun["names"] >= 7 and begun["unprotected"] == ["model"]
    code = (
        "frame['b'] = 0\nframe.loc[0, 'a'] = 99\n"
        "numbers[1].append(4)\nnumbers.append(5)\n"
        "table['k']['v'] = 2\ntable['new'] = 1\n"
        "arr[0] = -1\ncount = 6\nextra = 1\nmodel.fitted = True\n"
        "open('written.txt', 'w').write('x')\n"
        "import subprocess\nsubprocess.run(['true'])\n"
        "raise ValueError('boom')"
    )
    failed = await executor.execute(code)
    assert failed.ename == "ValueError"
    answer = await rollback.call(executor, "rollback", token="k1", code=code)
    assert answer["ok"] and answer["removed"] == ["extra", "subprocess"]  # its import too
    assert set(answer["restored"]) >= {"frame", "numbers", "table", "arr", "count"}
    kept = answer["kept"]
    assert any(k.startswith("model (Model") for k in kept), kept
    assert "wrote written.txt" in kept and "ran the program true" in kept
    shown = await py(
        executor,
        "print(frame.to_dict('list'), numbers, table, arr.tolist(), count, "
        "'extra' in dir(), model.fitted)",
    )
    # contents back (nested containers too); the unprotected object keeps its change
    assert shown == ("{'a': [1, 2, 3]} [1, [2, 3]] {'k': {'v': 1}} [0, 1, 2, 3] 5 False True\n")
    # the snapshot stays usable: a second failed attempt rolls back to the same point
    await executor.execute("numbers.clear()\ncount = 0\nraise KeyError('again')")
    again = await rollback.call(executor, "rollback", token="k1", code="")
    assert set(again["restored"]) == {"numbers", "count"} and again["kept"] == []
    assert await py(executor, "print(numbers, count)") == "[1, [2, 3]] 5\n"
    await rollback.call(executor, "discard", token="k1")


async def test_the_budget_decides_what_is_copied(executor: KernelExecutor) -> None:
    await py(executor, "import numpy as np\nbig = np.zeros(10_000_000)\nsmall = [0] * 10")
    answer = await rollback.call(executor, "begin", token="k2", max_bytes=1024**2)
    assert "big" in answer["unprotected"] and "small" not in answer["unprotected"]
    code = "big[0] = 1\nsmall[0] = 1\nraise ValueError"
    await executor.execute(code)
    back = await rollback.call(executor, "rollback", token="k2", code=code)
    assert any(k.startswith("big (ndarray, over the snapshot budget)") for k in back["kept"])
    assert await py(executor, "print(big[0], small[0])") == "1.0 0\n"
    await rollback.call(executor, "discard", token="k2")


async def test_undo_restores_what_a_run_changed_unless_changed_again(
    executor: KernelExecutor,
) -> None:
    await py(executor, "u_keep = 1\nu_list = [1]\nu_other = 'a'")
    await rollback.call(executor, "begin", token="k3", max_bytes=64 * 1024**2)
    await py(executor, "u_keep = 2\nu_list.append(2)\nu_new = 3\nu_other = 'b'")
    committed = await rollback.call(executor, "commit", token="k3", undo_key="run-3")
    assert committed["changed"] == ["u_keep", "u_list", "u_new", "u_other"]
    await py(executor, "u_other = 'changed later'")
    answer = await rollback.call(executor, "undo", undo_key="run-3")
    assert answer["ok"] and answer["removed"] == ["u_new"]
    assert set(answer["restored"]) == {"u_keep", "u_list"}
    assert answer["kept"] == ["u_other: changed again since; left as it is"]
    shown = await py(executor, "print(u_keep, u_list, 'u_new' in dir(), u_other)")
    assert shown == "1 [1] False changed later\n"
    twice = await rollback.call(executor, "undo", undo_key="run-3")
    assert not twice["ok"] and "nothing to undo" in twice["message"]


async def test_snapshots_use_no_execution_count_and_leave_no_names(
    executor: KernelExecutor,
) -> None:
    before = await py(executor, "print(sorted(k for k in globals() if not k.startswith('_')))")
    await rollback.call(executor, "begin", token="k4", max_bytes=1024**2)
    await rollback.call(executor, "rollback", token="k4", code="")
    await rollback.call(executor, "discard", token="k4")
    after = await py(executor, "print(sorted(k for k in globals() if not k.startswith('_')))")
    assert before == after
    counts = await py(executor, "print(len(In))")
    await rollback.call(executor, "begin", token="k5", max_bytes=1024**2)
    await rollback.call(executor, "discard", token="k5")
    assert int(await py(executor, "print(len(In))")) == int(counts) + 1  # only our own cell
