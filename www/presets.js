// Label and template presets. ImageNet's 1,000 classes and CLIP's templates load on demand.

export const DEFAULT_TEMPLATE = 'a photo of a {}.';

export const LABEL_PRESETS = {
  everyday: {
    title: 'Everyday objects',
    labels: ['cat', 'dog', 'bird', 'horse', 'car', 'bicycle', 'motorcycle', 'airplane', 'rocket', 'boat',
      'cup of coffee', 'plate of food', 'flower', 'tree', 'book', 'laptop', 'mobile phone', 'chair', 'person', 'astronaut'],
  },
  scenes: {
    title: 'Scenes',
    labels: ['beach', 'mountain', 'forest', 'city street', 'kitchen', 'living room', 'office', 'restaurant',
      'park', 'snowy landscape', 'desert', 'night sky', 'underwater scene', 'concert', 'sports field', 'airport'],
    templates: ['a photo of a {}.', 'a photo taken at a {}.'],
  },
  imagenet: { title: 'ImageNet’s 1,000 classes' },
};

export const TEMPLATE_PRESETS = {
  single: { title: `One template: “${DEFAULT_TEMPLATE}”` },
  clip7: { title: 'CLIP’s 7 ImageNet templates' },
  clip80: { title: 'CLIP’s 80 ImageNet templates' },
};

let imagenet = null;
const loadImagenet = () => (imagenet ??= import(/* webpackChunkName: "imagenet" */ './data/imagenet.json').then((m) => m.default ?? m));

/** `{ labels, templates? }` of a label preset. */
export async function labelPreset(key) {
  if (key === 'imagenet') return { labels: (await loadImagenet()).classnames };
  return LABEL_PRESETS[key];
}

/** The templates of a template preset. */
export async function templatePreset(key) {
  if (key === 'clip7') return (await loadImagenet()).templates7;
  if (key === 'clip80') return (await loadImagenet()).templates80;
  return [DEFAULT_TEMPLATE];
}
