import './index.css';
import { CssBaseline, ThemeProvider, createTheme } from '@mui/material';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { BrowserRouter } from 'react-router-dom';
import { ApiProvider } from './api';
import { App } from './App';

const theme = createTheme({
  // warning and info darker than MUI's defaults: white chip text on them meets WCAG AA (axe color-contrast)
  palette: { primary: { main: '#1a4f8b' }, secondary: { main: '#6b3fa0' }, warning: { main: '#b45309', contrastText: '#fff' }, info: { main: '#01579b', contrastText: '#fff' } },
  components: { MuiButton: { defaultProps: { size: 'small' } } },
});

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <ThemeProvider theme={theme}>
      <CssBaseline />
      <BrowserRouter>
        <ApiProvider>
          <App />
        </ApiProvider>
      </BrowserRouter>
    </ThemeProvider>
  </StrictMode>,
);
