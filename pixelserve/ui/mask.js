// The inpainting mask: a canvas over the init image; the brush paints the area to redraw, the
// eraser takes it back. maskBase64() gives OctoAI's mask_image: white = repaint, black = keep.

export class MaskPainter {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.tool = "brush";
    this.size = 12; // in displayed pixels
    this.last = null;
    this.painted = false;
    canvas.addEventListener("pointerdown", (e) => {
      canvas.setPointerCapture(e.pointerId);
      this.last = this.point(e);
      this.stroke(this.last, this.last);
    });
    canvas.addEventListener("pointermove", (e) => {
      if (!this.last) return;
      const p = this.point(e);
      this.stroke(this.last, p);
      this.last = p;
    });
    const end = () => { this.last = null; };
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);
  }

  reset(width, height) {
    this.canvas.width = width;
    this.canvas.height = height;
    this.clear();
  }

  clear() {
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.painted = false;
  }

  point(e) {
    const r = this.canvas.getBoundingClientRect();
    return { x: ((e.clientX - r.left) * this.canvas.width) / r.width, y: ((e.clientY - r.top) * this.canvas.height) / r.height,
      scale: this.canvas.width / r.width };
  }

  stroke(a, b) {
    const ctx = this.ctx;
    ctx.globalCompositeOperation = this.tool === "eraser" ? "destination-out" : "source-over";
    ctx.strokeStyle = "rgb(0, 255, 255)"; // cyan: seen over most images (the demo models draw pink noise)
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.lineWidth = Math.max(1, this.size * b.scale);
    ctx.beginPath();
    ctx.moveTo(a.x, a.y);
    ctx.lineTo(b.x + 0.01, b.y);
    ctx.stroke();
    if (this.tool === "brush") this.painted = true;
  }

  // The mask as base64 PNG (no data: prefix), the size of the init image.
  maskBase64() {
    const { width, height } = this.canvas;
    const white = document.createElement("canvas");
    white.width = width;
    white.height = height;
    const w = white.getContext("2d");
    w.drawImage(this.canvas, 0, 0);
    w.globalCompositeOperation = "source-in"; // keeps the painted pixels' coverage, in white
    w.fillStyle = "#fff";
    w.fillRect(0, 0, width, height);
    const out = document.createElement("canvas");
    out.width = width;
    out.height = height;
    const o = out.getContext("2d");
    o.fillStyle = "#000";
    o.fillRect(0, 0, width, height);
    o.drawImage(white, 0, 0);
    return out.toDataURL("image/png").split(",")[1];
  }
}
