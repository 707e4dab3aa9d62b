"""daphne's Twisted layer must not parse multipart bodies (Django streams them itself)."""

from twisted.web import http

from config.twisted_uploads import disable_twisted_multipart_parsing


def test_multipart_bodies_are_not_parsed_by_twisted():
    import config.asgi  # noqa: F401  (the ASGI module applies it when daphne imports it)

    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\nevent_id\r\n--b--\r\n'
    assert disable_twisted_multipart_parsing() is True
    assert http._getMultiPartArgs(body, b"multipart/form-data; boundary=b") == {}
