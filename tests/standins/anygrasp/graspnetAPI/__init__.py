"""Stand-in of graspnetAPI's GraspGroup / Grasp (tests only); see ../README.md."""

from __future__ import annotations

import copy

import numpy as np

GRASP_ARRAY_LEN = 17


class Grasp:
    def __init__(self, array: np.ndarray) -> None:
        self.grasp_array = np.array(array, dtype=np.float32)

    score = property(lambda self: float(self.grasp_array[0]))
    width = property(lambda self: float(self.grasp_array[1]))
    height = property(lambda self: float(self.grasp_array[2]))
    depth = property(lambda self: float(self.grasp_array[3]))
    rotation_matrix = property(lambda self: self.grasp_array[4:13].reshape(3, 3))
    translation = property(lambda self: self.grasp_array[13:16])
    object_id = property(lambda self: int(self.grasp_array[16]))


class GraspGroup:
    def __init__(self, array: np.ndarray | None = None) -> None:
        self.grasp_group_array = (np.zeros((0, GRASP_ARRAY_LEN), np.float32) if array is None
                                  else np.asarray(array, np.float32).reshape(-1, GRASP_ARRAY_LEN))

    def __len__(self) -> int:
        return len(self.grasp_group_array)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return Grasp(self.grasp_group_array[index])
        return GraspGroup(copy.deepcopy(self.grasp_group_array[index]))

    scores = property(lambda self: self.grasp_group_array[:, 0])
    widths = property(lambda self: self.grasp_group_array[:, 1])
    heights = property(lambda self: self.grasp_group_array[:, 2])
    depths = property(lambda self: self.grasp_group_array[:, 3])
    rotation_matrices = property(lambda self: self.grasp_group_array[:, 4:13].reshape(-1, 3, 3))
    translations = property(lambda self: self.grasp_group_array[:, 13:16])
    object_ids = property(lambda self: self.grasp_group_array[:, 16].astype(np.int32))

    def sort_by_score(self, reverse: bool = False) -> "GraspGroup":
        """High to low (low to high with reverse=True), stable; returns self."""
        order = np.argsort(-self.scores if not reverse else self.scores, kind="stable")
        self.grasp_group_array = self.grasp_group_array[order]
        return self

    def nms(self, translation_thresh: float = 0.03, rotation_thresh: float = 30.0 / 180.0 * np.pi) -> "GraspGroup":
        """Greedy non-maximum suppression (best score first); returns a new group."""
        order = np.argsort(-self.scores, kind="stable")
        keep: list[int] = []
        for i in order:
            ok = True
            for j in keep:
                dt = np.linalg.norm(self.translations[i] - self.translations[j])
                R = self.rotation_matrices[i].T @ self.rotation_matrices[j]
                ang = np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))
                if dt < translation_thresh and ang < rotation_thresh:
                    ok = False
                    break
            if ok:
                keep.append(int(i))
        return GraspGroup(self.grasp_group_array[sorted(keep)])
