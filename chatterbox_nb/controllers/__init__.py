"""Controllers: what turns a click in a widget into work (a say, a replay, a voice change).

`display/` holds the views, fed with data and callbacks; the modules here wire those views
to the API. They sit above `api` and beside `magics`, so `display/` imports none of them.
"""
