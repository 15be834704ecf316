"""The query-mode REPL child of the krunner Python runtime, one job per module.

Everything here runs inside the *user's* image under the image's own Python
(CPython 3.8 or newer): standard library only, no syntax newer than 3.8.  The
runner starts ``repl.py`` as a script; it loads this directory as the private
package ``_krunner_child`` (a name no user module can collide with) and runs
``mainloop.main()``.  The runner itself imports the same files as
``krunner.runtimes.python_child`` for the framing.

* ``framing``     -- fds 3/4 and the length-prefixed JSON frames on them
* ``streams``     -- the user's stdout/stderr (counted, block-buffered) and the flusher thread
* ``interrupts``  -- SIGINT: KeyboardInterrupt only inside user code
* ``channel``     -- events to the runner, positioned after the output before them
* ``user_input``  -- input(), getpass() and sys.stdin as input requests
* ``display``     -- display() and the ``_repr_*_`` protocol as media events
* ``inline_plots`` -- the in-memory matplotlib backend (PNG media after each cell)
* ``executor``    -- compiling and running cells, top-level await, tracebacks
* ``completion``  -- completion of names, attributes, modules and dict keys
* ``mainloop``    -- wiring it together: the main thread runs cells, a reader thread takes commands

Importing any of these modules has no side effects.
"""

import os

# Frames from these files are the REPL's own: tracebacks leave them out.
CHILD_DIR = os.path.normcase(os.path.dirname(os.path.abspath(__file__)))
