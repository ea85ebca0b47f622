// Navigation between the parts of the client, filled in by app.js (so the screen modules do not
// import each other in a circle).

export const go = {
  signIn: () => {},
  account: () => {},
  forgot: () => {},
};
