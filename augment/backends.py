"""Where render batches run: local processes (loky) or a cluster through joblib's dask or ray
backends. The batches, seeds and bytes are the same on every backend; only placement changes.

Cluster workers write audio straight into `--out`, so it must be a path every worker sees (a
shared filesystem); the manifest is written by the submitting process alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from joblib import parallel_config

from augment.errors import ConfigError

BACKENDS = ("loky", "dask", "ray")


@contextlib.contextmanager
def execution_backend(name: str, scheduler: str | None = None) -> Iterator[None]:
    """Run the enclosed joblib calls on `name`; `scheduler` is a dask scheduler address
    (tcp://host:8786) or a ray address. Without one, a local cluster is started."""
    if name == "loky":
        with parallel_config(backend="loky", inner_max_num_threads=1):
            yield
    elif name == "dask":
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError(
                "--backend dask needs dask.distributed: pip install 'msaug[dask]'"
            ) from None
        with contextlib.ExitStack() as stack:
            if scheduler is None:
                cluster = stack.enter_context(
                    LocalCluster(processes=True, threads_per_worker=1, dashboard_address=None)
                )
                scheduler = cluster.scheduler_address
            stack.enter_context(Client(scheduler))
            stack.enter_context(parallel_config(backend="dask"))
            yield
    elif name == "ray":
        try:
            import ray
            from ray.util.joblib import register_ray
        except ImportError:
            raise ConfigError("--backend ray needs ray: pip install 'msaug[ray]'") from None
        register_ray()
        ray.init(address=scheduler, ignore_reinit_error=True)
        try:
            with parallel_config(backend="ray"):
                yield
        finally:
            ray.shutdown()
    else:
        raise ConfigError(f"--backend must be one of {BACKENDS}, got {name!r}")
