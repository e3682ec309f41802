"""Hello world: the simplest task. Trigger it with ``python backend.py``."""

from taskloom import task


async def run(payload: dict) -> None:
    # 3. You can write code that runs for a long time here, there are no timeouts
    print(payload["message"])


hello_world = task(
    # 1. Use a unique id for each task
    id="hello-world",
    # 2. The run function is the main function of the task
    run=run,
)
