"""`m2aenet web`: a page served on this machine to deblur photos in a browser.

`handlers.py` holds what the page asks for (pure request -> response functions around one
`Deblurrer`); `server.py` puts them behind the standard library's HTTP server; `static/` is the
page itself (HTML, CSS, JavaScript, nothing fetched from elsewhere).
"""
