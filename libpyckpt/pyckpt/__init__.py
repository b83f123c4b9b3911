"""pyckpt: checkpoint/restart of Python HPC applications."""
