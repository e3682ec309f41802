"""A task that asks for a bigger machine preset."""

from taskloom import task


async def run(payload, ctx):
    return {"machine": ctx.machine.name, "cpu": ctx.machine.cpu, "memory": ctx.machine.memory}


heavy_task = task(
    id="heavy-task",
    machine={"preset": "large-1x"},  # 4 vCPU, 8 GB RAM
    run=run,
)
