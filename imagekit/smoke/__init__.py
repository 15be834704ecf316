"""``bai-imagekit test``: start an image the way an agent does and smoke-test every protocol and service.

:mod:`.model` (results), :mod:`.session` (one kernel container + clients),
:mod:`.checks` (one module per kind of check), :mod:`.runner` (order, timing,
cleanup, concurrency), :mod:`.report` (text / json / junit), :mod:`.testfile`
(the image author's own checks).
"""
