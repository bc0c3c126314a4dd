"""Pictures people read in the Dagster UI, reports and MLflow: PNGs inlined as data URIs,
so nothing else has to be fetched to see them."""

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def figure(width: float = 8, height: float = 3):
    return plt.subplots(figsize=(width, height))


def png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def markdown(images: dict[str, str]) -> str:
    return "\n\n".join(f"![{name}](data:image/png;base64,{data})" for name, data in images.items())
