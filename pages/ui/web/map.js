// The map of the images: every image a point (WebGL, regl-scatterplot), the image under the cursor,
// and, zoomed in, each image drawn in place from the thumbnail atlas. A Streamlit custom component
// (v2): Python sends `data` (see pages/ui/mapview.py); the selection goes back as the state value
// `selection` ({rows, polygon}); a missing atlas is asked for with the trigger value `need_atlas`.
// On a density map (only a sample of the images drawn as points), zoomed in far enough, the images
// of the region in view are asked for with the trigger value `need_view` and drawn in place.
// Built into map.bundle.js by build.sh (esbuild): the page loads nothing from the internet.
import createScatterplot from 'regl-scatterplot';

const HOVER_PX = 120; // the image under the cursor: 3 screen px per tile px of a 40-px tile
const THUMBS_UP_TO = 1500; // points in view at most for them to be drawn as thumbnails
const THUMB_MIN_PX = 24;
const THUMB_MAX_PX = 96;
const AREA_ROOM_FROM_ZOOM = 1.5; // zoomed in at least this much (the first view is 1)
const SHAPE_PX = 72; // a typical shape on the map
const FRAME_PX = 2;
const MARK_PX = 9; // a new image's star
const VIEW_MARGIN = 0.25; // a region asked for reaches this share of the view beyond each side
const VIEW_STILL_MS = 150; // the view is asked for once the camera has been still this long
const MODES = [
  ['pan', 'Pan and zoom', 'Drag to pan, scroll to zoom; shift + drag draws a lasso'],
  ['lasso', 'Lasso', 'Drag around the images to select'],
  ['box', 'Box', 'Drag a box over the images to select'],
];

// Atlases outlive a component's redraws and pages: each travels to the browser once a session.
const atlases = (window.__dotmapAtlases = window.__dotmapAtlases || new Map());

function decode(base64, Type) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Type(bytes.buffer);
}

function loadAtlas(payload) {
  const pages = payload.pages.map((page) => {
    const img = new Image();
    img.src = 'data:image/png;base64,' + page;
    return img;
  });
  const ready = Promise.all(pages.map((img) => img.decode()));
  return { ...payload, pages, ready, loaded: false };
}

function element(tag, className, parent) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (parent) parent.appendChild(node);
  return node;
}

function build(parentElement, height) {
  const root = element('div', 'dm-map', parentElement);
  root.style.height = `${height}px`;
  const bar = element('div', 'dm-bar', root);
  const title = element('span', 'dm-title', bar);
  const buttons = element('span', 'dm-modes', bar);
  const stage = element('div', 'dm-stage', root);
  const under = element('canvas', 'dm-under', stage);
  const canvas = element('canvas', 'dm-points', stage);
  const over = element('canvas', 'dm-over', stage);
  const hover = element('div', 'dm-hover', stage);
  const hoverImage = element('canvas', 'dm-hover-image', hover);
  hoverImage.width = HOVER_PX;
  hoverImage.height = HOVER_PX;
  const hoverText = element('div', 'dm-hover-text', hover);
  const note = element('div', 'dm-note', root);
  return { root, title, buttons, stage, under, canvas, over, hover, hoverImage, hoverText, note };
}

function setUp(view) {
  const { width, height } = view.stage.getBoundingClientRect();
  for (const c of [view.under, view.over]) {
    c.width = Math.round(width * devicePixelRatio);
    c.height = Math.round(height * devicePixelRatio);
  }
  const plot = createScatterplot({
    canvas: view.canvas,
    width,
    height,
    pointSize: 4,
    backgroundColor: [1, 1, 1, 0],
    lassoType: 'freeform',
    lassoColor: [0.1, 0.1, 0.1, 1],
    pointColorHover: [0.1, 0.1, 0.1, 1],
    pointColorActive: [0.1, 0.1, 0.1, 1],
    pointOutlineWidth: 2,
    deselectOnEscape: true,
    deselectOnDblClick: true,
  });
  const self = { plot, view, width, height, data: null, selected: [], polygon: null, frame: 0, views: new Map() };
  plot.subscribe('lassoEnd', ({ coordinates }) => {
    self.polygon = coordinates.map(([x, y]) => [x, y]);
  });
  plot.subscribe('select', ({ points }) => {
    // 'select' comes before 'lassoEnd': send both once the lasso has ended
    setTimeout(() => send(self, Array.from(points)), 0);
  });
  plot.subscribe('deselect', () => send(self, []));
  plot.subscribe('pointOver', (i) => showHover(self, i));
  plot.subscribe('pointOut', () => {
    view.hover.style.display = 'none';
    view.root.dataset.hoverRow = '';
  });
  plot.subscribe('view', () => {
    view.hover.style.display = 'none'; // the point moved from under the cursor
    schedule(self);
  });
  plot.subscribe('draw', () => schedule(self));
  for (const [mode, words, help] of MODES) {
    const button = element('button', 'dm-mode', view.buttons);
    button.textContent = words;
    button.title = help;
    button.dataset.mode = mode;
    button.onclick = () => setMode(self, mode);
  }
  const reset = element('button', 'dm-mode', view.buttons);
  reset.textContent = 'Reset view';
  reset.onclick = () => plot.reset();
  setMode(self, 'pan');
  new ResizeObserver(() => resize(self)).observe(view.stage);
  view.stage.addEventListener('mousemove', () => {
    self.lastMove = performance.now();
  });
  self.screenOf = (i) => toScreen(self, self.data.x[i], self.data.y[i]);
  self.worldOf = (sx, sy) => toWorld(self, sx, sy);
  view.root.dotmap = self; // the browser tests reach the map here
  return self;
}

function setMode(self, mode) {
  self.plot.set({ mouseMode: mode === 'pan' ? 'panZoom' : 'lasso', lassoType: mode === 'box' ? 'rectangle' : 'freeform' });
  for (const b of self.view.buttons.querySelectorAll('[data-mode]')) b.classList.toggle('dm-on', b.dataset.mode === mode);
}

function resize(self) {
  const { width, height } = self.view.stage.getBoundingClientRect();
  if (!width || (width === self.width && height === self.height)) return;
  self.width = width;
  self.height = height;
  for (const c of [self.view.under, self.view.over]) {
    c.width = Math.round(width * devicePixelRatio);
    c.height = Math.round(height * devicePixelRatio);
  }
  self.plot.set({ width, height });
  schedule(self);
}

function send(self, points) {
  const rows = self.data ? points.map((i) => self.data.rows[i]) : [];
  self.selected = points;
  const polygon = points.length > 1 ? self.polygon : null;
  self.lastPolygon = polygon;
  self.polygon = null;
  self.view.root.dataset.selected = String(rows.length);
  self.setStateValue('selection', { rows, polygon, serial: Date.now() });
}

// World (the normalised coordinates Python sends) to CSS pixels of the stage, as regl-scatterplot
// projects its points (getScreenPosition): view matrix, then the canvas's aspect ratio.
function toScreen(self, x, y) {
  const v = self.plot.get('cameraView');
  const vx = v[0] * x + v[4] * y + v[12];
  const vy = v[1] * x + v[5] * y + v[13];
  const aspect = self.width / self.height;
  return [(self.width * (vx / aspect + 1)) / 2, self.height * (0.5 - vy / 2)];
}

function atlasOf(self) {
  const atlas = self.data && atlases.get(self.data.atlas_key);
  return atlas && atlas.loaded ? atlas : null;
}

// CSS pixels of the stage back to world coordinates (the inverse of toScreen; the camera does not rotate)
function toWorld(self, sx, sy) {
  const v = self.plot.get('cameraView');
  const aspect = self.width / self.height;
  return [(((2 * sx) / self.width - 1) * aspect - v[12]) / v[0], (1 - (2 * sy) / self.height - v[13]) / v[5]];
}

// The side (CSS px) each image in view has room for; the images are drawn from THUMB_MIN_PX. The
// zoom has spread the points apart when their median gap to a nearest neighbour (``spacing``, world
// units) is that wide on screen; or, once the user has zoomed in, when the stage's area shared among
// the points in view is twice as wide (a map's clusters are tight: the median gap alone reaches it
// only when a handful of points are left in view).
function roomOf(self, spacing, pointsInView) {
  const zoom = self.plot.get('cameraView')[0];
  const gap = spacing * zoom * (self.height / 2);
  const share = zoom >= AREA_ROOM_FROM_ZOOM ? Math.sqrt((self.width * self.height) / Math.max(1, pointsInView)) / 2 : 0;
  return Math.max(gap, share);
}

function inside(box, x0, y0, x1, y1) {
  return box && x0 >= box[0] && y0 >= box[1] && x1 <= box[2] && y1 <= box[3];
}

// A density map zoomed in so far that the images in view (estimated from the sample) have room:
// the region's images, if they are here, else a request for them once the camera stands still.
function viewImages(self, inView) {
  const { data } = self;
  if (!data.density || !data.n_total) return null;
  const estimate = (inView.length * data.n_total) / Math.max(1, data.rows.length);
  const room = roomOf(self, data.spacing_all, estimate);
  if (estimate > THUMBS_UP_TO || room < THUMB_MIN_PX) return null;
  const [x0, y1] = toWorld(self, 0, 0);
  const [x1, y0] = toWorld(self, self.width, self.height);
  const part = self.region;
  const shown = part && self.views.get(part.id);
  if (shown && shown.loaded && inside(part.box, x0, y0, x1, y1)) return { part, atlas: shown, room };
  const asked = self.askedBox;
  const area = (x1 - x0) * (y1 - y0);
  const again = asked && inside(asked.box, x0, y0, x1, y1) && (!asked.refused || area > asked.area / 2);
  clearTimeout(self.viewTimer);
  if (!again) {
    self.viewTimer = setTimeout(() => {
      const mx = (x1 - x0) * VIEW_MARGIN;
      const my = (y1 - y0) * VIEW_MARGIN;
      const box = [x0 - mx, y0 - my, x1 + mx, y1 + my];
      self.askedBox = { box, area: (box[2] - box[0]) * (box[3] - box[1]), refused: false };
      self.view.root.dataset.viewAsked = String(Number(self.view.root.dataset.viewAsked || 0) + 1);
      self.setTriggerValue('need_view', { box, serial: Date.now() });
    }, VIEW_STILL_MS);
  }
  return null;
}

// The region Python sent with this run (its images' positions, rows, labels; its tiles the first time)
function takeView(self, raw) {
  self.region = null;
  if (!raw) return;
  if (raw.too_many) {
    // more images in the region than can be drawn: asked again only once the view is half as large
    if (self.askedBox) self.askedBox.refused = true;
    return;
  }
  const xy = decode(raw.xy, Float32Array);
  self.region = {
    id: raw.id,
    box: raw.box,
    x: xy.filter((_, j) => j % 2 === 0),
    y: xy.filter((_, j) => j % 2 === 1),
    labels: decode(raw.labels, Int16Array),
    rows: decode(raw.rows, Int32Array),
  };
  if (raw.atlas && !self.views.has(raw.id)) {
    const atlas = loadAtlas(raw.atlas);
    self.views.set(raw.id, atlas);
    while (self.views.size > 4) self.views.delete(self.views.keys().next().value);
    atlas.ready.then(() => {
      atlas.loaded = true;
      schedule(self);
    });
  }
}

function drawTile(context, atlas, tile, x, y, side) {
  const page = Math.floor(tile / atlas.per_page);
  const at = tile % atlas.per_page;
  const sx = (at % atlas.columns) * atlas.tile;
  const sy = Math.floor(at / atlas.columns) * atlas.tile;
  context.drawImage(atlas.pages[page], sx, sy, atlas.tile, atlas.tile, x, y, side, side);
}

function showHover(self, i) {
  const { view, data } = self;
  const row = data.rows[i];
  const label = data.labels[i];
  const atlas = atlasOf(self);
  const context = view.hoverImage.getContext('2d');
  context.imageSmoothingEnabled = false;
  context.fillStyle = '#ffffff';
  context.fillRect(0, 0, HOVER_PX, HOVER_PX);
  const tile = atlas ? data.tiles[i] : -1;
  if (tile >= 0) drawTile(context, atlas, tile, 0, 0, HOVER_PX);
  view.hoverImage.style.display = tile >= 0 ? 'block' : 'none';
  view.hoverImage.style.borderColor = label >= 0 ? data.colours[label] : data.noise;
  const name = atlas ? atlas.names[tile] : '';
  const group = label >= 0 ? data.group_names[label] : 'in no group';
  view.hoverText.textContent = (name ? name + ' · ' : '') + group + (atlas ? '' : ' (thumbnails are being made)');
  const [x, y] = toScreen(self, data.x[i], data.y[i]);
  const left = x + 14 + HOVER_PX + 12 > self.width ? x - 14 - HOVER_PX - 12 : x + 14;
  const top = Math.min(Math.max(0, y - HOVER_PX / 2), self.height - HOVER_PX - 40);
  view.hover.style.left = `${left}px`;
  view.hover.style.top = `${top}px`;
  view.hover.style.display = 'block';
  view.root.dataset.hoverRow = String(row);
  if (self.lastMove) view.root.dataset.hoverDelayMs = (performance.now() - self.lastMove).toFixed(1);
}

function star(context, x, y, size) {
  context.beginPath();
  for (let j = 0; j < 10; j++) {
    const r = j % 2 ? size / 2.5 : size;
    const a = (Math.PI * j) / 5 - Math.PI / 2;
    context.lineTo(x + r * Math.cos(a), y + r * Math.sin(a));
  }
  context.closePath();
  context.fillStyle = '#111111';
  context.fill();
  context.strokeStyle = '#ffffff';
  context.lineWidth = 1.5;
  context.stroke();
}

function schedule(self) {
  if (self.frame) return;
  self.frame = requestAnimationFrame(() => {
    self.frame = 0;
    paint(self);
  });
}

function paint(self) {
  const { view, data } = self;
  if (!data) return;
  const ratio = devicePixelRatio;
  const under = view.under.getContext('2d');
  under.setTransform(ratio, 0, 0, ratio, 0, 0);
  under.clearRect(0, 0, self.width, self.height);
  if (data.density && self.density) {
    const [x0, y0] = toScreen(self, data.density.x0, data.density.y1);
    const [x1, y1] = toScreen(self, data.density.x1, data.density.y0);
    under.imageSmoothingEnabled = false;
    under.drawImage(self.density, x0, y0, x1 - x0, y1 - y0);
  }
  view.root.dataset.density = data.density && self.density ? 'yes' : 'no';
  const over = view.over.getContext('2d');
  over.setTransform(ratio, 0, 0, ratio, 0, 0);
  over.clearRect(0, 0, self.width, self.height);
  const atlas = atlasOf(self);
  const inView = self.plot.get('pointsInView');
  let drawn = 0;
  const room = roomOf(self, data.spacing, inView.length);
  const region = viewImages(self, inView);
  let regionDrawn = 0;
  if (region) {
    // every image of the region, not only the sample: drawn from the region's own tiles
    const { part, atlas: tiles } = region;
    const side = Math.min(THUMB_MAX_PX, region.room);
    over.imageSmoothingEnabled = side < tiles.tile;
    for (let j = 0; j < part.rows.length; j++) {
      const [x, y] = toScreen(self, part.x[j], part.y[j]);
      if (x < -side || y < -side || x > self.width + side || y > self.height + side) continue;
      const label = part.labels[j];
      over.fillStyle = label >= 0 ? data.colours[label] : data.noise;
      over.fillRect(x - side / 2 - FRAME_PX, y - side / 2 - FRAME_PX, side + 2 * FRAME_PX, side + 2 * FRAME_PX);
      drawTile(over, tiles, j, x - side / 2, y - side / 2, side);
      regionDrawn += 1;
    }
    drawn = regionDrawn;
  } else if (atlas && inView.length <= THUMBS_UP_TO && room >= THUMB_MIN_PX) {
    const side = Math.min(THUMB_MAX_PX, room);
    over.imageSmoothingEnabled = side < atlas.tile;
    for (const i of inView) {
      const tile = data.tiles[i];
      if (tile < 0) continue;
      const [x, y] = toScreen(self, data.x[i], data.y[i]);
      const label = data.labels[i];
      over.fillStyle = label >= 0 ? data.colours[label] : data.noise;
      over.fillRect(x - side / 2 - FRAME_PX, y - side / 2 - FRAME_PX, side + 2 * FRAME_PX, side + 2 * FRAME_PX);
      drawTile(over, atlas, tile, x - side / 2, y - side / 2, side);
      drawn += 1;
    }
  }
  let shapes = 0;
  if (!drawn && self.shapes) {
    for (const shape of self.shapes) {
      shapes += 1;
      const [x, y] = toScreen(self, shape.x, shape.y);
      over.drawImage(shape.image, x - SHAPE_PX / 2, y - SHAPE_PX / 2, SHAPE_PX, SHAPE_PX);
    }
  }
  for (const mark of data.marks) {
    const [x, y] = toScreen(self, mark.x, mark.y);
    star(over, x, y, MARK_PX);
    over.font = '12px sans-serif';
    over.fillStyle = '#111111';
    over.fillText(mark.name, x + MARK_PX, y + 4);
  }
  view.root.dataset.thumbnails = String(drawn);
  view.root.dataset.viewImages = String(regionDrawn);
  view.root.dataset.shapes = String(shapes);
  view.root.dataset.inView = String(inView.length);
  view.root.dataset.paints = String(Number(view.root.dataset.paints || 0) + 1);
}

function takeData(self, raw) {
  const xy = decode(raw.xy, Float32Array);
  const n = xy.length / 2;
  const x = new Float32Array(n);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x[i] = xy[2 * i];
    y[i] = xy[2 * i + 1];
  }
  const labels = decode(raw.labels, Int16Array);
  const data = { ...raw, x, y, labels, rows: decode(raw.rows, Int32Array), tiles: decode(raw.tiles, Int32Array) };
  const k = raw.colours.length;
  const category = new Float32Array(n); // regl-scatterplot's categories are 0..k; images in no group: k
  for (let i = 0; i < n; i++) category[i] = labels[i] >= 0 ? labels[i] : k;
  self.data = data;
  self.shapes = null;
  Promise.all(
    raw.shapes.map((shape) => {
      const image = new Image();
      image.src = shape.png;
      return image.decode().then(() => ({ ...shape, image }));
    }),
  ).then((shapes) => {
    if (self.data === data) {
      self.shapes = shapes;
      schedule(self);
    }
  });
  self.density = null;
  if (raw.density) {
    const image = new Image();
    image.src = raw.density.png;
    image.decode().then(() => {
      if (self.data === data) {
        self.density = image;
        schedule(self);
      }
    });
  }
  const keep = raw.points_key === self.pointsKey;
  self.pointsKey = raw.points_key;
  self.plot.set({ colorBy: 'valueA', pointColor: [...raw.colours, raw.noise], pointSize: raw.point_size });
  const selected = keep ? self.selected : [];
  self.selected = selected;
  self.plot.draw({ x, y, valueA: category }, { zDataType: 'categorical', select: selected, preventFilterReset: keep });
  self.view.title.textContent = raw.title;
  self.view.note.textContent = raw.note;
}

export default function mapComponent({ data, parentElement, setStateValue, setTriggerValue }) {
  let root = parentElement.querySelector('.dm-map');
  if (!root) {
    const view = build(parentElement, data.height);
    setUp(view);
    root = view.root;
  }
  const self = root.dotmap;
  self.setStateValue = setStateValue; // the latest run's
  self.setTriggerValue = setTriggerValue;
  if (data.atlas && !atlases.has(data.atlas_key)) {
    const atlas = loadAtlas(data.atlas);
    atlases.set(data.atlas_key, atlas);
    atlas.ready.then(() => {
      atlas.loaded = true;
      if (self.data && self.data.atlas_key === data.atlas_key) root.dataset.atlas = 'yes';
      schedule(self);
    });
  }
  if (data.atlas_key && !atlases.has(data.atlas_key)) setTriggerValue('need_atlas', data.atlas_key);
  takeView(self, data.view);
  takeData(self, data);
  root.dataset.atlas = !data.atlas_key ? 'no' : atlasOf(self) ? 'yes' : 'loading';
  root.dataset.ready = 'yes';
}
