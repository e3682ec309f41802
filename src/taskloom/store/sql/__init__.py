"""The dialect-neutral SQL core of the store: the session and its statements."""
