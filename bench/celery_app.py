"""The Celery side of the comparison (bench/celery_bench.py): one trivial task, a Redis broker
and result backend named by ZOS_BENCH_CELERY_REDIS. Bench-only: celery is in
bench/requirements.txt, not in the product's requirements."""

import os

from celery import Celery

REDIS = os.environ.get("ZOS_BENCH_CELERY_REDIS", "redis://127.0.0.1:6379/0")
app = Celery("zos_bench", broker=REDIS, backend=REDIS)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="zos_bench.answer")
def answer(a: int, b: int) -> int:
    """The same job as deploy_bench's script `40 + 2`."""
    return a + b
