"""Camera renderer of the synthetic world: ground by casting pixel rays onto z = 0 and looking up a rasterised
bird's-eye texture of the map; vehicles, pedestrians, cyclists, static objects and traffic-light heads as
shaded 3D cuboids drawn back to front (painter's algorithm) with PIL."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from data_pipelines.camera_geometry import PinholeCamera, camera_to_body_rotation, scaled_intrinsic
from data_pipelines.synthetic.layouts import LayoutInstance

# Colours (RGB).
GRASS = (88, 104, 70)
ASPHALT = (72, 72, 76)
CARPARK = (92, 90, 88)
GENERIC_AREA = (104, 98, 90)
SIDEWALK = (150, 148, 142)
WHITE = (235, 235, 230)
YELLOW_PAINT = (225, 190, 40)
SKY_TOP = (110, 150, 205)
SKY_HORIZON = (200, 212, 225)
HAZE = np.array([185, 192, 200], dtype=np.float32)
LIGHT_COLORS = {"red": (255, 30, 30), "yellow": (255, 200, 0), "green": (40, 255, 80)}
SIGNAL_HOUSING = (30, 30, 30)
MARKING_WIDTH_M = 0.3
DASH_M, GAP_M = 3.0, 6.0
TEXTURE_MARGIN_M = 40.0
MAX_RENDER_DISTANCE_M = 120.0
FOG_DISTANCE_M = 160.0
SIGNAL_HEAD_SIZE = (0.5, 1.2, 1.3)  # depth, width, height of a traffic-light head
SIGNAL_HEAD_BOTTOM_M = 4.6

# Camera rig (OpenScene keys): yaw of the optical axis in the ego frame [deg], mount position in the ego frame.
# Full-resolution nuPlan-like intrinsics (1920 x 1080, fx = fy = 1545, principal point (960, 560)), scaled to
# the configured image width.
CAMERA_YAW_DEG = {"CAM_F0": 0.0, "CAM_L0": 55.0, "CAM_L1": 110.0, "CAM_L2": 150.0, "CAM_R0": -55.0,
                  "CAM_R1": -110.0, "CAM_R2": -150.0, "CAM_B0": 180.0}
CAMERA_MOUNT_EGO = {"CAM_F0": (2.0, 0.0, 1.6), "CAM_L0": (1.9, 0.5, 1.6), "CAM_L1": (1.2, 0.9, 1.6),
                    "CAM_L2": (0.2, 0.8, 1.6), "CAM_R0": (1.9, -0.5, 1.6), "CAM_R1": (1.2, -0.9, 1.6),
                    "CAM_R2": (0.2, -0.8, 1.6), "CAM_B0": (-0.9, 0.0, 1.6)}
CAMERA_PITCH_RAD = 0.0
FULL_RES_WIDTH, FULL_RES_HEIGHT = 1920, 1080
FULL_RES_FOCAL, FULL_RES_CX, FULL_RES_CY = 1545.0, 960.0, 560.0
LIDAR2EGO_TRANSLATION = np.array([1.5, 0.0, 1.9])  # roof lidar above the front half of the car
LIDAR2EGO_QUATERNION = np.array([1.0, 0.0, 0.0, 0.0])  # lidar axes = ego axes


def camera_rig(width: int, height: int) -> dict[str, dict[str, np.ndarray]]:
    """OpenScene camera entries (sensor2lidar rotation/translation, intrinsic, distortion) for every camera."""
    scale = width / FULL_RES_WIDTH
    # Square pixels; the principal point keeps its relative position when the aspect ratio differs.
    intrinsic = scaled_intrinsic(FULL_RES_FOCAL, FULL_RES_FOCAL, FULL_RES_CX, FULL_RES_CY * height / (FULL_RES_HEIGHT * scale), scale)
    rig = {}
    for name, yaw in CAMERA_YAW_DEG.items():
        rotation_ego = camera_to_body_rotation(np.deg2rad(yaw), CAMERA_PITCH_RAD)
        # lidar axes equal ego axes, so camera->lidar rotation = camera->ego rotation.
        rig[name] = {
            "sensor2lidar_rotation": rotation_ego,
            "sensor2lidar_translation": np.asarray(CAMERA_MOUNT_EGO[name], dtype=np.float64) - LIDAR2EGO_TRANSLATION,
            "cam_intrinsic": intrinsic.copy(),
            "distortion": np.zeros(5),
        }
    return rig


def pinhole(rig_entry: dict, width: int, height: int) -> PinholeCamera:
    return PinholeCamera(rig_entry["cam_intrinsic"], rig_entry["sensor2lidar_rotation"],
                         rig_entry["sensor2lidar_translation"], LIDAR2EGO_QUATERNION, LIDAR2EGO_TRANSLATION,
                         width, height)


# ------------------------------------------------------------------------------------------------ ground texture
@dataclass
class GroundTexture:
    """BEV texture; the outermost pixel ring is grass so out-of-range lookups clamp onto grass."""

    image: np.ndarray  # (H, W, 3) uint8, row 0 = north edge
    x0: float
    y1: float
    resolution: float

    def __post_init__(self) -> None:
        self.image[0, :] = GRASS
        self.image[-1, :] = GRASS
        self.image[:, 0] = GRASS
        self.image[:, -1] = GRASS
        self._flat = self.image.reshape(-1, 3)

    def lookup(self, xy: np.ndarray) -> np.ndarray:
        """Colours (..., 3) uint8 at global points (..., 2), nearest texel."""
        h, w = self.image.shape[:2]
        col = np.clip(((xy[..., 0] - self.x0) / self.resolution).astype(np.int64), 0, w - 1)
        row = np.clip(((self.y1 - xy[..., 1]) / self.resolution).astype(np.int64), 0, h - 1)
        return self._flat[row * w + col]


def _dashes(line: np.ndarray, dash: float, gap: float) -> list[np.ndarray]:
    seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    out, start = [], 0.0
    while start < s[-1]:
        t = np.linspace(start, min(start + dash, s[-1]), 4)
        out.append(np.stack([np.interp(t, s, line[:, 0]), np.interp(t, s, line[:, 1])], axis=1))
        start += dash + gap
    return out


def rasterize_ground(inst: LayoutInstance, resolution: float) -> GroundTexture:
    """Bird's-eye texture of one layout instance: grass, sidewalks, asphalt, carparks, markings, crosswalks."""
    polys = [rb.polygon for rb in inst.roadblocks.values()] + [p for _, p in inst.walkways] + [
        p for _, p in inst.carparks] + [p for _, p in inst.generic_areas] + [p for _, p in inst.intersections]
    bounds = np.array([p.bounds for p in polys])
    x0, y0 = bounds[:, 0].min() - TEXTURE_MARGIN_M, bounds[:, 1].min() - TEXTURE_MARGIN_M
    x1, y1 = bounds[:, 2].max() + TEXTURE_MARGIN_M, bounds[:, 3].max() + TEXTURE_MARGIN_M
    w, h = int(np.ceil((x1 - x0) / resolution)), int(np.ceil((y1 - y0) / resolution))
    img = Image.new("RGB", (w, h), GRASS)
    draw = ImageDraw.Draw(img)

    def px(points: np.ndarray) -> list[tuple[float, float]]:
        points = np.asarray(points)
        return list(zip(((points[:, 0] - x0) / resolution).tolist(), ((y1 - points[:, 1]) / resolution).tolist()))

    def fill(polygon, color) -> None:
        draw.polygon(px(np.asarray(polygon.exterior.coords)), fill=color)

    width_px = max(int(round(MARKING_WIDTH_M / resolution)), 1)
    for _, p in inst.walkways:
        fill(p, SIDEWALK)
    for _, p in inst.generic_areas:
        fill(p, GENERIC_AREA)
    for _, p in inst.carparks:
        fill(p, CARPARK)
    for rb in inst.roadblocks.values():
        fill(rb.polygon, ASPHALT)
    for lc in inst.connectors.values():
        fill(lc.polygon, ASPHALT)
    for _, p in inst.intersections:
        fill(p, ASPHALT)
    # Parking bay lines.
    for spot in inst.parking_spots:
        c, hd = spot[:2], spot[2]
        along = np.array([np.cos(hd), np.sin(hd)])
        across = np.array([-along[1], along[0]])
        for side in (-1.0, 1.0):
            a = c + side * 1.4 * across - 2.8 * along
            b = c + side * 1.4 * across + 2.8 * along
            draw.line(px(np.array([a, b])), fill=WHITE, width=width_px)
    # Lane markings: divider between directions (lane 0's left edge) double yellow, lanes dashed white,
    # outer edge solid white.
    for rb in inst.roadblocks.values():
        lanes = [inst.lanes[i] for i in rb.lane_ids]
        for lane in lanes:
            if lane.index == 0:
                for off in (-0.15, 0.15):
                    edge = lane.left + off * _normals(lane.left)
                    draw.line(px(edge), fill=YELLOW_PAINT, width=width_px)
            if lane.index == len(lanes) - 1:
                draw.line(px(lane.right), fill=WHITE, width=width_px)
            else:
                for dash in _dashes(lane.right, DASH_M, GAP_M):
                    draw.line(px(dash), fill=WHITE, width=width_px)
    # Crosswalk zebra stripes and stop lines.
    for _, p in inst.crosswalks:
        coords = np.asarray(p.exterior.coords)[:4]
        a, b, c, d = coords  # a-b-c-d: two long edges a->d and b->c across the road
        n_stripes = max(int(np.linalg.norm(d - a) / 1.0), 1)
        for k in range(0, n_stripes, 2):
            t0, t1 = k / n_stripes, (k + 1) / n_stripes
            quad = np.array([a + (d - a) * t0, b + (c - b) * t0, b + (c - b) * t1, a + (d - a) * t1])
            draw.polygon(px(quad), fill=WHITE)
    for _, p in inst.stop_polygons:
        fill(p, WHITE)
    return GroundTexture(np.array(img), x0, y1, resolution)


def _normals(line: np.ndarray) -> np.ndarray:
    t = np.gradient(line, axis=0)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    return np.stack([-t[:, 1], t[:, 0]], axis=1)


# ------------------------------------------------------------------------------------------------------ objects
@dataclass
class Box3D:
    """A cuboid in the ego frame: centre (x, y, z of the centre), size (l, w, h), yaw; colour per face."""

    center: np.ndarray
    size: np.ndarray
    yaw: float
    color: tuple[int, int, int]
    face_colors: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def corners(self) -> np.ndarray:
        l, w, h = self.size / 2.0
        x = np.array([l, l, -l, -l, l, l, -l, -l])
        y = np.array([w, -w, -w, w, w, -w, -w, w])
        z = np.array([-h, -h, -h, -h, h, h, h, h])
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return np.stack([c * x - s * y, s * x + c * y, z], axis=1) + self.center


FACES = {"front": [0, 1, 5, 4], "back": [2, 3, 7, 6], "left": [3, 0, 4, 7], "right": [1, 2, 6, 5],
         "top": [4, 5, 6, 7]}
LIGHT_DIRECTION = np.array([0.3, 0.5, 0.81])  # sun direction in the ego frame (normalised below)
LIGHT_DIRECTION = LIGHT_DIRECTION / np.linalg.norm(LIGHT_DIRECTION)


def _clip_near(poly: np.ndarray, near: float) -> np.ndarray:
    """Sutherland-Hodgman clip of a camera-frame polygon against the plane z = near."""
    out = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        ina, inb = a[2] >= near, b[2] >= near
        if ina:
            out.append(a)
        if ina != inb:
            t = (near - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out)


def object_boxes(kind: str, center_xy: np.ndarray, yaw: float, size: np.ndarray, color_seed: int) -> list[Box3D]:
    """Cuboids that draw one annotated object (ego frame); vehicles get a body and a cabin."""
    l, w, h = (float(v) for v in size)
    rng = np.random.default_rng(color_seed)
    cx, cy = float(center_xy[0]), float(center_xy[1])
    if kind == "vehicle":
        palette = [(180, 30, 30), (30, 60, 150), (210, 210, 210), (40, 40, 40), (120, 120, 125), (200, 170, 40),
                   (30, 110, 60), (240, 240, 240)]
        body = palette[int(rng.integers(0, len(palette)))]
        body_h = 0.55 * h
        cabin_l = 0.55 * l
        back = -0.12 * l
        c, s = np.cos(yaw), np.sin(yaw)
        return [Box3D(np.array([cx, cy, body_h / 2]), np.array([l, w, body_h]), yaw, body),
                Box3D(np.array([cx + back * c, cy + back * s, body_h + (h - body_h) / 2]),
                      np.array([cabin_l, 0.9 * w, h - body_h]), yaw, (45, 55, 65),
                      face_colors={"top": body})]
    if kind == "pedestrian":
        shirt = tuple(int(v) for v in rng.integers(40, 220, 3))
        return [Box3D(np.array([cx, cy, 0.45]), np.array([0.35, 0.45, 0.9]), yaw, (40, 40, 60)),
                Box3D(np.array([cx, cy, 1.2]), np.array([0.35, 0.5, 0.6]), yaw, shirt),
                Box3D(np.array([cx, cy, 1.63]), np.array([0.25, 0.25, 0.25]), yaw, (200, 160, 130))]
    if kind == "bicycle":
        return [Box3D(np.array([cx, cy, 0.45]), np.array([l, 0.12, 0.9]), yaw, (30, 30, 30)),
                Box3D(np.array([cx, cy, 1.25]), np.array([0.45, 0.5, 0.7]), yaw, (200, 80, 30))]
    if kind == "traffic_cone":
        return [Box3D(np.array([cx, cy, h / 2]), np.array([l, w, h]), yaw, (255, 110, 0), {"top": (245, 245, 245)})]
    if kind == "barrier":
        return [Box3D(np.array([cx, cy, h / 2]), np.array([l, w, h]), yaw, (220, 40, 40), {"top": (245, 245, 245)})]
    if kind == "czone_sign":
        return [Box3D(np.array([cx, cy, 0.6]), np.array([0.1, 0.1, 1.2]), yaw, (90, 90, 90)),
                Box3D(np.array([cx, cy, 1.5]), np.array([0.1, w, 0.6]), yaw, (255, 140, 0))]
    return [Box3D(np.array([cx, cy, h / 2]), np.array([l, w, h]), yaw, (60, 90, 60))]


def signal_head_boxes(inst: LayoutInstance, states: dict[int, str], ego_pose: np.ndarray) -> list[Box3D]:
    """Traffic-light heads above every signalized inbound lane at its stop line, facing approaching traffic."""
    boxes = []
    stop_by_id = dict(inst.stop_polygons)
    done = set()
    for lc in inst.connectors.values():
        if lc.signal_group < 0 or lc.from_lane in done:
            continue
        done.add(lc.from_lane)
        lane = inst.lanes[lc.from_lane]
        d = lane.centerline[-1] - lane.centerline[-2]
        heading = float(np.arctan2(d[1], d[0]))
        stop = np.asarray(stop_by_id[lc.stop_polygon_id].centroid.coords[0])
        state = states.get(lc.signal_group, "red")
        x, y, yaw = _to_ego(stop, heading, ego_pose)
        if x * x + y * y > MAX_RENDER_DISTANCE_M**2:
            continue
        size = np.array(SIGNAL_HEAD_SIZE)
        # The head faces approaching traffic: its "back" face (local -x) points upstream.
        boxes.append(Box3D(np.array([x, y, SIGNAL_HEAD_BOTTOM_M + size[2] / 2]), size, yaw, SIGNAL_HOUSING,
                           face_colors={"back": LIGHT_COLORS[state]}))
    return boxes


def _to_ego(xy: np.ndarray, heading: float, ego_pose: np.ndarray) -> tuple[float, float, float]:
    dx, dy = xy[0] - ego_pose[0], xy[1] - ego_pose[1]
    c, s = np.cos(ego_pose[2]), np.sin(ego_pose[2])
    return float(c * dx + s * dy), float(-s * dx + c * dy), float(heading - ego_pose[2])


# ----------------------------------------------------------------------------------------------------- renderer
class CameraRenderer:
    """Renders one camera of one layout instance; ray directions are precomputed once."""

    def __init__(self, camera: PinholeCamera, texture: GroundTexture, width: int, height: int):
        self.camera = camera
        self.texture = texture
        self.width, self.height = width, height
        ground_xy, hits = camera.ground_points(width, height)
        rays = camera.pixel_rays_ego(width, height)
        dist = np.linalg.norm(ground_xy - camera.position_ego[:2], axis=-1)
        hits = hits & (dist < 2000.0)
        self.hit_index = np.nonzero(hits.ravel())[0]
        self.ground_xy = ground_xy.reshape(-1, 2)[self.hit_index]
        fog = (1.0 - np.exp(-dist.ravel()[self.hit_index] / FOG_DISTANCE_M)).astype(np.float32)[:, None]
        self.ground_keep = 1.0 - fog
        self.haze = HAZE[None, :] * fog
        elevation = np.clip(rays[..., 2], 0.0, 1.0)[..., None]
        sky = (1 - elevation) * np.array(SKY_HORIZON) + elevation * np.array(SKY_TOP)
        self.sky = np.clip(sky + 0.5, 0, 255).astype(np.uint8).reshape(-1, 3)
        self.ego_to_cam = camera.ego_to_camera

    def render(self, ego_pose: np.ndarray, boxes: list[Box3D]) -> Image.Image:
        c, s = np.cos(ego_pose[2]), np.sin(ego_pose[2])
        gxy = np.empty_like(self.ground_xy)
        gxy[:, 0] = ego_pose[0] + c * self.ground_xy[:, 0] - s * self.ground_xy[:, 1]
        gxy[:, 1] = ego_pose[1] + s * self.ground_xy[:, 0] + c * self.ground_xy[:, 1]
        ground = self.texture.lookup(gxy).astype(np.float32) * self.ground_keep + self.haze
        pixels = self.sky.copy()
        pixels[self.hit_index] = (ground + 0.5).astype(np.uint8)
        img = Image.fromarray(pixels.reshape(self.height, self.width, 3))
        self._draw_boxes(ImageDraw.Draw(img), boxes)
        return img

    def _draw_boxes(self, draw: ImageDraw.ImageDraw, boxes: list[Box3D]) -> None:
        """Cull boxes outside the view, then draw visible faces of all boxes back to front."""
        if not boxes:
            return
        m = self.ego_to_cam
        cam_pos = self.camera.position_ego
        K = self.camera.intrinsic
        centers = np.array([b.center for b in boxes])
        radius = np.array([np.linalg.norm(b.size) / 2.0 for b in boxes])
        cc = centers @ m[:3, :3].T + m[:3, 3]
        half_fov_x = (self.width / 2.0) / K[0, 0]
        dist = np.linalg.norm(centers[:, :2] - cam_pos[:2], axis=1)
        keep = (dist < MAX_RENDER_DISTANCE_M) & (cc[:, 2] > -radius) & (
            np.abs(cc[:, 0]) < cc[:, 2] * half_fov_x * 1.1 + radius * 1.5)
        index = np.nonzero(keep)[0]
        if len(index) == 0:
            return
        corners = np.array([boxes[i].corners() for i in index])  # (B, 8, 3) ego frame
        corners_cam = corners @ m[:3, :3].T + m[:3, 3]
        names = list(FACES)
        face_idx = np.array([FACES[n] for n in names])  # (5, 4)
        quads = corners[:, face_idx]  # (B, 5, 4, 3)
        normals = np.cross(quads[:, :, 3] - quads[:, :, 0], quads[:, :, 1] - quads[:, :, 0])  # outward
        normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
        face_centers = quads.mean(axis=2)
        visible = np.einsum("bfk,bfk->bf", normals, cam_pos - face_centers) > 0
        shade = 0.55 + 0.45 * np.clip(normals @ LIGHT_DIRECTION, 0.0, None)
        face_dist = np.linalg.norm(face_centers - cam_pos, axis=-1)
        order = np.argsort(-dist[index], kind="stable")
        for b in order:
            box = boxes[index[b]]
            for f in np.argsort(-face_dist[b], kind="stable"):
                if not visible[b, f]:
                    continue
                poly = corners_cam[b, face_idx[f]]
                if poly[:, 2].min() < NEAR_PLANE_M:
                    poly = _clip_near(poly, NEAR_PLANE_M)
                    if len(poly) < 3:
                        continue
                u = K[0, 0] * poly[:, 0] / poly[:, 2] + K[0, 2]
                v = K[1, 1] * poly[:, 1] / poly[:, 2] + K[1, 2]
                name = names[f]
                base = box.face_colors.get(name, box.color)
                k = 1.0 if base in LIGHT_COLORS.values() else float(shade[b, f])
                color = (int(min(base[0] * k, 255)), int(min(base[1] * k, 255)), int(min(base[2] * k, 255)))
                draw.polygon(list(zip(u.tolist(), v.tolist())), fill=color)


NEAR_PLANE_M = 0.2


def encode_jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=False, progressive=False, subsampling=2)
    return buf.getvalue()


def blank_image(width: int, height: int) -> Image.Image:
    return Image.new("RGB", (width, height), (0, 0, 0))
