"""`et3d-app`: a local web page over `student.generate.api` (Gradio, the optional ``.[app]`` extra).

`session` does the work and knows nothing of Gradio (the tests and the bench call it directly); `page`
lays out the Gradio blocks over it; `cli` finds the checkpoint and serves the page on 127.0.0.1;
`browser` drives headless chromium over the DevTools protocol (the browser test, `screenshot`);
`screenshot` writes the README's docs/app.png.
"""
