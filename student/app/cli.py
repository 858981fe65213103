"""`et3d-app`: serve the ET3D page on this machine (http://127.0.0.1:PORT), nothing reaches outside it."""

from __future__ import annotations

from pathlib import Path

import typer

EXAMPLES = """
Examples (the checkpoint defaults to the newest one of `make train` / `make demo`):

  et3d-app                                  # http://127.0.0.1:7860

  et3d-app --ckpt runs/train/00002-cpu --port 8080

  make app
"""

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command(help="Serve a local web page that turns a prompt into a 3D asset in one forward pass.", epilog=EXAMPLES)
def serve(
    ckpt: Path | None = typer.Option(
        None, help="Checkpoint folder, or a run folder (its newest). [default: the newest under runs/train]"
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (127.0.0.1: this machine only)."),
    port: int = typer.Option(7860, min=1, max=65535, help="Port to listen on."),
    grid: int = typer.Option(128, min=8, help="Marching-cubes cells per axis."),
    level: float | None = typer.Option(
        None, help="Density level of the surface. [default: as et3d-gen]", show_default=False
    ),
    out: Path | None = typer.Option(None, help="Folder for the generated files. [default: a new temporary folder]"),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto."),
) -> None:
    try:
        import gradio  # noqa: F401
    except ImportError:
        typer.echo("error: the app needs gradio: pip install -e '.[app]' (or make install)", err=True)
        raise typer.Exit(2) from None
    from student.app.page import build_page, theme
    from student.app.session import Session
    from student.mesh.config import MeshConfig

    stride = next(s for s in (4, 2, 1) if grid % s == 0)
    try:
        mesh_config = MeshConfig(grid=grid, sigma_level=level, coarse_stride=stride)
    except ValueError as e:
        typer.echo(f"error: --grid/--level: {e}", err=True)
        raise typer.Exit(2) from None
    session = Session.load(ckpt, out, mesh_config=mesh_config, device=device)
    typer.echo(session.description.replace("**", ""))
    session.warm_up()
    typer.echo(f"files go to {session.out_dir}")
    build_page(session).queue().launch(
        server_name=host,
        server_port=port,
        theme=theme(),
        share=False,
        ssr_mode=False,
        show_error=True,
        allowed_paths=[str(session.out_dir)],
        footer_links=[],
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
