"""Prefect helpers the flows rely on: the `gpu` limit, the GPU work pool and fan-out,
recovery of dead runs, progress events and the local stack."""
