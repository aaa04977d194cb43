"""Pusher component and executor: the stock ones, plus TF Serving's model config file.

After a blessed model is copied to ``<serving_dir>/<model>/<version>/`` (the push
destination's ``base_directory`` is ``<serving_dir>/<model>``), the executor
rewrites ``<serving_dir>/models.config`` (``twotower.serving.tf_serving_config``)
so a ``tensorflow_model_server --model_config_file`` polling it serves the new
model. Its ``base_path`` is ``/models/<model>`` for a local serving directory
(mounted there by deploy/tf-serving/docker-compose.yml) and the serving
directory itself for a remote one (``gs://...``), which TF Serving reads directly.
An unblessed model pushes nothing and leaves the file as it was.
"""

from tfx.components.pusher import component as pusher_component
from tfx.dsl.components.base import executor_spec

from twotower.components.pusher import executor


class Pusher(pusher_component.Pusher):
    """The stock Pusher component, running executor.Executor."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
