"""Your backend code: trigger a run of hello-world and print its handle.

Run it from this directory (``python backend.py``) while ``taskloom worker`` runs.
"""

from trigger.hello_world import hello_world

from taskloom import RunHandle


def trigger_hello_world() -> RunHandle:
    # This triggers the task and returns a handle
    handle = hello_world.trigger({"message": "Hello world!"})

    # You can use the handle to check the status of the task, cancel and retry it.
    print("Task is running with handle", handle.id)
    return handle


if __name__ == "__main__":
    trigger_hello_world()
