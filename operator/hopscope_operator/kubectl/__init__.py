"""`kubectl hopscope`: the plugin (`plugin`) and its SVG topology (`svg`)."""
