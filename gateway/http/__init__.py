"""The HTTP face: the widget's pages and files, the JSON API (tokens, widget settings,
callbacks) through one reader and one writer, and the visitor's address behind proxies."""
