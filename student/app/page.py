"""The Gradio page over a `Session`: a Generate tab and an Interpolate tab.

Gradio is imported here only (the optional ``.[app]`` extra). Errors a person can cause arrive as
`AppError` and are shown as `gr.Error` (a one-line toast, no traceback); the page never reaches outside
127.0.0.1: analytics are off and the theme uses system fonts instead of Google Fonts.
"""

from __future__ import annotations

import os

from student.app.session import MAX_PROMPT_CHARS, MAX_SAMPLES, TEXTURE_SIZES, AppError, Result, Session

# Before gradio is imported: no usage analytics, no version check, no Hugging Face calls.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
VIEWER_BACKGROUND = (1.0, 1.0, 1.0, 1.0)  # white, as the student's renders


def theme() -> gr.themes.Theme:
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=["ui-monospace", "monospace"])


def _generate_outputs(result: Result, samples: int):
    return (
        str(result.glb),
        str(result.turntable),
        [str(p) for p in result.previews],
        [str(p) for p in result.downloads],
        f"{result.faces} faces. " + result.timings.markdown(samples),
    )


def build_page(session: Session) -> gr.Blocks:
    """The page; `launch` it (see `student.app.cli`) with `theme()`."""

    def generate(prompt, seed, samples, truncation, max_faces, texture):
        try:
            result = session.generate(prompt, seed, samples, truncation, max_faces, texture)
        except AppError as e:
            raise gr.Error(str(e), print_exception=False) from None
        return _generate_outputs(result, int(samples))

    def interpolate(prompt_a, prompt_b, t, seed, truncation):
        try:
            result = session.interpolate(prompt_a, prompt_b, t, seed, truncation)
        except AppError as e:
            raise gr.Error(str(e), print_exception=False) from None
        return str(result.glb), str(result.previews[0]), result.timings.markdown(1)

    with gr.Blocks(title="ET3D: text to 3D in one forward pass", analytics_enabled=False) as page:
        gr.Markdown("# ET3D: text to 3D in one forward pass\n" + session.description, elem_id="model-info")
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column(scale=1):
                    prompt = gr.Textbox(
                        label="Prompt",
                        placeholder="a red cube",
                        max_lines=2,
                        elem_id="prompt",
                        info=f"At most {MAX_PROMPT_CHARS} characters.",
                    )
                    with gr.Row():
                        seed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id="seed")
                        samples = gr.Slider(1, MAX_SAMPLES, value=1, step=1, label="Samples", elem_id="samples")
                    truncation = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Truncation psi (1 = none)")
                    with gr.Row():
                        max_faces = gr.Number(0, label="Max faces (0 = all)", precision=0, minimum=0)
                        texture = gr.Dropdown(list(TEXTURE_SIZES), value=0, label="Texture px (0 = vertex colours)")
                    button = gr.Button("Generate", variant="primary", elem_id="generate")
                    timing = gr.Markdown(elem_id="timing")
                with gr.Column(scale=2):
                    viewer = gr.Model3D(
                        label="Sample 1 (drag to orbit)", clear_color=VIEWER_BACKGROUND, height=420, elem_id="viewer"
                    )
                    with gr.Row():
                        turntable = gr.Image(label="Student's turntable", type="filepath", height=240)
                        gallery = gr.Gallery(label="Student's views per sample", height=240, columns=2)
                    downloads = gr.File(label="Downloads: GLB, OBJ, PLY", file_count="multiple")
            inputs = [prompt, seed, samples, truncation, max_faces, texture]
            outputs = [viewer, turntable, gallery, downloads, timing]
            button.click(generate, inputs, outputs, api_name="generate")
            prompt.submit(generate, inputs, outputs, api_name=False)
        with gr.Tab("Interpolate"):
            with gr.Row():
                with gr.Column(scale=1):
                    prompt_a = gr.Textbox(label="From", value="a red cube", max_lines=2)
                    prompt_b = gr.Textbox(label="To", value="a blue sphere", max_lines=2)
                    position = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Position (0 = From, 1 = To)")
                    seed_i = gr.Number(0, label="Seed", precision=0, minimum=0)
                    truncation_i = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Truncation psi (1 = none)")
                    button_i = gr.Button("Interpolate", variant="primary")
                    timing_i = gr.Markdown()
                with gr.Column(scale=2):
                    viewer_i = gr.Model3D(label="Interpolated asset", clear_color=VIEWER_BACKGROUND, height=420)
                    views_i = gr.Image(label="Student's views", type="filepath", height=200)
            inputs_i = [prompt_a, prompt_b, position, seed_i, truncation_i]
            outputs_i = [viewer_i, views_i, timing_i]
            button_i.click(interpolate, inputs_i, outputs_i, api_name="interpolate")
            position.release(interpolate, inputs_i, outputs_i, api_name=False)
    return page
