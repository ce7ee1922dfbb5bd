"""What kind of tensor a value is, told without importing TensorFlow or JAX.

The package's rules that take tensors of either framework (`scales.scaled_size`,
`labels.check_label_range`) pick their ops with these; importing this module imports
neither framework.
"""

import sys


def is_tensorflow_tensor(value) -> bool:
    """Whether `value` is a TensorFlow tensor or variable."""
    return type(value).__module__.startswith("tensorflow.")


def is_jax_tracer(value) -> bool:
    """Whether `value` is traced by `jax.jit` (it has no concrete value to check in Python)."""
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(value, jax.core.Tracer)
