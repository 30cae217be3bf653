"""Fixtures for kernel tests: one real ipykernel per module, shut down at the end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from codeflow_magic.executors.kernel import KernelExecutor

CAP = 20_000
"""Output cap used by the shared executors (small, so floods are cheap to test)."""


@pytest.fixture(scope="module")
def kernel_work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kernel-work")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def executor(kernel_work_dir: Path) -> AsyncIterator[KernelExecutor]:
    """A started kernel shared by a module; tests set up the state they rely on."""
    ex = KernelExecutor(
        work_dir=kernel_work_dir,
        timeout=60.0,
        interrupt_grace=3.0,
        max_output_chars=CAP,
    )
    await ex.start()
    try:
        yield ex
    finally:
        await ex.shutdown()
