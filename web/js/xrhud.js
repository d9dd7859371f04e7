// A status panel rendered inside the immersive session: 2D canvas text uploaded as a
// WebGL texture on a quad that floats in front of the operator (world-locked in local-floor).

const VERTEX = `#version 300 es
in vec2 a_pos;
uniform mat4 u_mvp;
out vec2 v_uv;
void main() {
  v_uv = vec2(a_pos.x + 0.5, 0.5 - a_pos.y);
  gl_Position = u_mvp * vec4(a_pos.x * 0.8, a_pos.y * 0.4, 0.0, 1.0);
}`;

const FRAGMENT = `#version 300 es
precision mediump float;
in vec2 v_uv;
uniform sampler2D u_tex;
out vec4 color;
void main() { color = texture(u_tex, v_uv); }`;

// Panel centre in local-floor (RUB, metres): 1.3 m up, 1 m ahead of the starting spot.
const PANEL_AT = [0, 1.3, -1.0];

function compile(gl, type, source) {
  const shader = gl.createShader(type);
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
    throw new Error(`HUD shader: ${gl.getShaderInfoLog(shader)}`);
  }
  return shader;
}

/** Column-major 4x4 product a*b (WebXR and WebGL matrices are column-major). */
function mul(a, b) {
  const out = new Float32Array(16);
  for (let c = 0; c < 4; c++) {
    for (let r = 0; r < 4; r++) {
      let sum = 0;
      for (let k = 0; k < 4; k++) sum += a[k * 4 + r] * b[c * 4 + k];
      out[c * 4 + r] = sum;
    }
  }
  return out;
}

function translation([x, y, z]) {
  return new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, x, y, z, 1]);
}

export class XRHud {
  constructor(gl) {
    this.gl = gl;
    this.text = document.createElement("canvas");
    this.text.width = 512;
    this.text.height = 256;
    this.ctx2d = this.text.getContext("2d");
    const program = gl.createProgram();
    gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX));
    gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) {
      throw new Error(`HUD program: ${gl.getProgramInfoLog(program)}`);
    }
    this.program = program;
    this.mvp = gl.getUniformLocation(program, "u_mvp");
    this.vao = gl.createVertexArray();
    gl.bindVertexArray(this.vao);
    const buf = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, buf);
    const quad = [-0.5, -0.5, 0.5, -0.5, -0.5, 0.5, 0.5, 0.5];
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array(quad), gl.STATIC_DRAW);
    const loc = gl.getAttribLocation(program, "a_pos");
    gl.enableVertexAttribArray(loc);
    gl.vertexAttribPointer(loc, 2, gl.FLOAT, false, 0, 0);
    gl.bindVertexArray(null);
    this.texture = gl.createTexture();
    this.setLines(["Tandem"]);
  }

  /** Redraw the panel text (one entry per line). */
  setLines(lines) {
    const c = this.ctx2d;
    c.fillStyle = "rgba(20, 23, 28, 0.92)";
    c.fillRect(0, 0, 512, 256);
    c.fillStyle = "#e8ecf1";
    c.font = "28px system-ui, sans-serif";
    lines.slice(0, 6).forEach((line, i) => c.fillText(line, 20, 44 + i * 40));
    const gl = this.gl;
    gl.bindTexture(gl.TEXTURE_2D, this.texture);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, this.text);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
  }

  /** Draw the panel into one XRView (viewport already set by the caller). */
  draw(view) {
    const gl = this.gl;
    const model = translation(PANEL_AT);
    const mvp = mul(view.projectionMatrix, mul(view.transform.inverse.matrix, model));
    gl.useProgram(this.program);
    gl.uniformMatrix4fv(this.mvp, false, mvp);
    gl.bindTexture(gl.TEXTURE_2D, this.texture);
    gl.bindVertexArray(this.vao);
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
    gl.bindVertexArray(null);
  }
}
